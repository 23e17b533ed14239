"""Faust agents and every piece of I/O: the worker, Kafka clients, CLI verbs, local stack."""
