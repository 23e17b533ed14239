"""The embedded local stack: tansu broker, SeaweedFS storage, and the demo."""
