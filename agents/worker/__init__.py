"""The worker process: the Faust app, its batch pipeline, the scoring helper, health, metrics."""
