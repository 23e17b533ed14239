"""Avro contracts (.avsc) of every record assetwatch reads or writes, and their codecs."""
