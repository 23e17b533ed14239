"""The broker-free batch core run by the scoring helper: raw messages in, encoded records out."""
