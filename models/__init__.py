"""Models: training, the scoring bundle, and registry access (the only MLflow code)."""
