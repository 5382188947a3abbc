"""What the Kafka commands (``replay``, ``lag``, ``tail``) print and default alike."""

from __future__ import annotations

import os

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
"""The local stack's Kafka (``mqtt-kafka-sync stack``)."""


def bootstrap_default() -> str:
    """``$KAFKA_BOOTSTRAP_SERVERS``, else :data:`DEFAULT_BOOTSTRAP`."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP


def duration(seconds: float) -> str:
    """``h:mm:ss``, for an ETA or an age."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
