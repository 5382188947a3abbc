"""The bridge and the tests on Kafka's SASL_SSL listener only (the ``secure`` fixture): the
connector keys that give the bridge that listener, the test's own connection through it, and the
``--command-config`` file of the tools."""

from __future__ import annotations

from pathlib import Path

from mqtt_kafka_sync.config.model import KafkaConnection
from mqtt_kafka_sync.devstack.secure import SecureEndpoints, write_kafka_properties


def kafka_keys(secure: SecureEndpoints, *, password_file: Path | None = None) -> dict[str, str]:
    """``kafka.<property>`` keys of a connector on the SASL_SSL listener; with ``password_file``
    the password is written there and the key reads it with ``${file:...}``."""
    settings = secure.kafka_settings()
    if password_file is not None:
        password_file.write_text(settings["sasl.password"])
        password_file.chmod(0o600)
        settings["sasl.password"] = f"${{file:{password_file}}}"
    return {f"kafka.{key}": value for key, value in settings.items()}


def sasl_connection(secure: SecureEndpoints) -> KafkaConnection:
    """How the test's own clients (set-up, reading back) reach the SASL_SSL listener."""
    settings = secure.kafka_settings()
    return KafkaConnection(settings.pop("bootstrap.servers"), common=settings)


def command_config(secure: SecureEndpoints, path: Path) -> Path:
    """A tool's ``--command-config`` file: the settings without ``bootstrap.servers`` (``--bootstrap``)."""
    settings = secure.kafka_settings()
    del settings["bootstrap.servers"]
    return write_kafka_properties(path, settings)
