"""What the Kafka commands (``replay``, ``lag``, ``tail``) print and default alike."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from confluent_kafka import KafkaError, KafkaException

from mqtt_kafka_sync.config.command_config import OPTION_HELP, load_command_config
from mqtt_kafka_sync.config.model import KafkaConnection

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"
"""The local stack's Kafka (``mqtt-kafka-sync stack``)."""


def bootstrap_default() -> str:
    """``$KAFKA_BOOTSTRAP_SERVERS``, else :data:`DEFAULT_BOOTSTRAP`."""
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP


def add_command_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--command-config", type=Path, metavar="FILE", help=OPTION_HELP)


def kafka_of(args: argparse.Namespace, bootstrap: str | None = None) -> KafkaConnection:
    """``--bootstrap`` (or ``bootstrap``) with the settings of ``--command-config``; raises
    ``ConfigError`` for a bad file."""
    return KafkaConnection(bootstrap or args.bootstrap, common=command_settings(args) or {})


def command_settings(args: argparse.Namespace) -> dict[str, str] | None:
    """The settings of ``--command-config``; None without it."""
    return load_command_config(args.command_config, os.environ) if args.command_config else None


def unreachable(exc: KafkaException) -> str:
    """librdkafka's reason a command could not talk to Kafka, in words, with the usual cause of a
    transport failure: a secured listener reached without ``--command-config``. The reason is
    librdkafka's error text, which names no setting's value."""
    err = exc.args[0] if exc.args else None
    reason = err.str() if isinstance(err, KafkaError) else str(exc)
    if isinstance(err, KafkaError) and err.code() in _NOT_REACHED:
        reason += " (a secured listener needs its security settings: --command-config FILE)"
    return reason


_NOT_REACHED = {KafkaError._TRANSPORT, KafkaError._TIMED_OUT, KafkaError._ALL_BROKERS_DOWN}


def duration(seconds: float) -> str:
    """``h:mm:ss``, for an ETA or an age."""
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"
