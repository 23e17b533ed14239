"""assetwatch: a Kafka stream processor for predictive maintenance."""

__version__ = "0.1.0"
