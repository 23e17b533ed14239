"""The label feedback service: joins maintenance labels to predictions, serves precision/recall."""
