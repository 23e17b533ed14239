"""Avro contracts (.avsc) of every record assetwatch reads or writes; loaded by agents.codecs."""
