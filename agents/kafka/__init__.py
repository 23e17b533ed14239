"""Kafka clients outside Faust (confluent-kafka): topics, publishers, readers."""
