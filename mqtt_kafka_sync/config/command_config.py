"""``--command-config FILE``: the librdkafka settings a command (``replay``, ``tail``, ``lag``,
``verify``) gives every Kafka client it opens, as Kafka's own tools take theirs.

A ``.properties`` file of librdkafka properties without prefix (``security.protocol=SASL_SSL``,
``sasl.username=...``), with the connector files' ``${env:VAR}`` / ``${file:path[:key]}`` providers.
Checked like a connector's ``kafka.<property>`` keys: the delivery guarantee and what the command
chooses itself are refused, the TLS files must exist and parse, librdkafka must accept the rest.
Secret values come back as :class:`~mqtt_kafka_sync.secret.Secret`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from mqtt_kafka_sync.config.common_keys import COMMON_FORBIDDEN, PRODUCER_GUARANTEE
from mqtt_kafka_sync.config.keycheck import Problems, client_overrides
from mqtt_kafka_sync.config.model import KafkaConnection
from mqtt_kafka_sync.config.properties import PropertiesError, parse_properties
from mqtt_kafka_sync.config.providers import ProviderError, resolve
from mqtt_kafka_sync.errors import ConfigError

OPTION_HELP = (
    "a .properties file of librdkafka settings (security.protocol, sasl.*, ssl.*; ${env:VAR} and "
    "${file:path[:key]} work) for every Kafka client the command opens"
)
COMMAND_FORBIDDEN = {
    **COMMON_FORBIDDEN,
    "bootstrap.servers": "the command takes its Kafka from --bootstrap",
    "group.id": "the command names its own group (it never commits offsets)",
}
_JAVA_ONLY = {
    "sasl.jaas.config": "that is Java's: librdkafka takes sasl.username and sasl.password",
    "ssl.truststore.location": "that is Java's: librdkafka takes ssl.ca.location (a PEM file)",
    "ssl.keystore.type": "that is Java's: librdkafka takes ssl.certificate.location and ssl.key.location",
}


def command_connection(bootstrap: str, path: Path | None, env: Mapping[str, str]) -> KafkaConnection:
    """A command's Kafka: ``--bootstrap`` and ``--command-config`` (when given)."""
    return KafkaConnection(bootstrap, common=load_command_config(path, env) if path else {})


def load_command_config(path: Path, env: Mapping[str, str]) -> dict[str, str]:
    """The file's settings, checked; raises :class:`ConfigError` naming every problem."""
    problems = Problems(str(path))
    try:
        entries = parse_properties(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, PropertiesError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else str(exc)
        problems.add(
            "--command-config", f"cannot read: {why}", "name a .properties file of librdkafka settings"
        )
        raise ConfigError(problems) from None
    raw: dict[str, str] = {}
    for entry in entries:
        if entry.key in raw:
            problems.add(entry.key, f"is set twice (line {entry.line})", "keep one")
        try:
            raw[entry.key] = resolve(entry.value, env, path.parent)
        except ProviderError as exc:
            problems.add(entry.key, exc.problem, exc.fix)
    settings = client_overrides(
        raw,
        "",
        COMMAND_FORBIDDEN,
        problems,
        example="security.protocol=SASL_SSL",
        refuse=lambda prop, _value: (_JAVA_ONLY[prop], f"remove {prop}") if prop in _JAVA_ONLY else None,
        fixed=PRODUCER_GUARANTEE,
    )
    if problems:
        raise ConfigError(problems)
    return settings
