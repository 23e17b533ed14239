"""CLI verbs that talk to the broker: dead letters, replay, simulate, labels."""
