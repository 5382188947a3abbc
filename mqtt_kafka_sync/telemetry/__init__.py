"""Metrics and health: the data paths push into it; it imports none of them (docs/metrics.md)."""
