"""What the source and relay builders (:mod:`~mqtt_kafka_sync.config.source`,
:mod:`~mqtt_kafka_sync.config.relay`) build alike: the route list, the MQTT and Kafka connections
(``kafka.<property>`` for every client, ``kafka.producer.*`` / ``kafka.consumer.*`` for one) and the
dead-letter topic.

Both connectors declare these keys under the same names (:mod:`~mqtt_kafka_sync.config.spec`), so
one function reads each; a key a connector lacks never reaches here.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any, NamedTuple

from mqtt_kafka_sync.config import spec
from mqtt_kafka_sync.config.common_keys import MQTT_TLS_KEYS
from mqtt_kafka_sync.config.keycheck import Problems, client_overrides
from mqtt_kafka_sync.config.keyspec import KeySpec
from mqtt_kafka_sync.config.librdkafka import knows
from mqtt_kafka_sync.config.model import KafkaConnection, MqttConnection, MqttServer, MqttTls
from mqtt_kafka_sync.config.tls_files import MQTT_KEYS, TlsFileProblem, load_mqtt_tls
from mqtt_kafka_sync.routing.router import kafka_topic_problem

DLQ_KEY = "errors.deadletterqueue.topic.name"
_IN_FLIGHT_ALLOWED = frozenset(str(n) for n in range(1, spec.MAX_IN_FLIGHT + 1))


def connector_values(
    raw: Mapping[str, str],
    problems: Problems,
    keys: tuple[KeySpec, ...],
    routes_key: KeySpec,
    route_of: Callable[[str], str | None],
) -> tuple[dict[str, Any], tuple[str, ...]]:
    """Every connector key's typed value (or None after a problem), and the route names listed.

    A missing ``routes`` key is suggested with the routes the file's ``routes.<route>.*`` keys name.
    """
    mentioned = ",".join(dict.fromkeys(r for k in raw if (r := route_of(k)) is not None))
    suggesting = replace(routes_key, example=mentioned or routes_key.example)
    values = {s.key: problems.value(suggesting if s is routes_key else s, raw) for s in keys}
    listed: tuple[str, ...] = values["routes"] or ()
    for twice in dict.fromkeys(n for n in listed if listed.count(n) > 1):
        problems.add("routes", f"route {twice!r} is listed twice", "list each route once")
    _check_mqtt_tls(raw, values, problems)
    return values, listed


def _check_mqtt_tls(raw: Mapping[str, str], values: Mapping[str, Any], problems: Problems) -> None:
    """``mqtt.ssl.*`` only with a TLS server URI; the files named exist, parse and belong together."""
    server: MqttServer | None = values["mqtt.server.uri"]
    given = [s.key for s in MQTT_TLS_KEYS if (raw.get(s.key) or "").strip()]
    if server is None:
        return
    if not server.tls:
        for key in given:
            fix = f"write mqtt.server.uri=ssl://{server.host}:8883 (the broker's TLS port), or remove {key}"
            problems.add(key, f"is set but mqtt.server.uri is {server.scheme}://, so TLS is not used", fix)
        return
    tls = mqtt_tls(values)
    if tls.key_location is not None and tls.certificate_location is None:
        problems.add(MQTT_KEYS.key, f"needs {MQTT_KEYS.certificate}", f"set {MQTT_KEYS.certificate} too")
    elif tls.key_password is not None and tls.certificate_location is None:
        problems.add(MQTT_KEYS.key_password, "there is no key to open", f"set {MQTT_KEYS.certificate}")
    elif not any(p.key.startswith("mqtt.ssl.") for p in problems):
        try:
            load_mqtt_tls(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), tls)
        except TlsFileProblem as exc:
            problems.add(exc.key, exc.problem, exc.fix)


def mqtt_tls(values: Mapping[str, Any]) -> MqttTls:
    """The ``mqtt.ssl.*`` settings (paths only: the files are read at every connect)."""
    password = values[MQTT_KEYS.key_password]
    return MqttTls(
        ca_location=_path(values[MQTT_KEYS.ca]),
        certificate_location=_path(values[MQTT_KEYS.certificate]),
        key_location=_path(values[MQTT_KEYS.key]),
        key_password=password,
        check_hostname=values["mqtt.ssl.endpoint.identification.algorithm"] == "https",
    )


def _path(text: str | None) -> Path | None:
    return Path(text).expanduser() if text else None


def mqtt_connection(values: Mapping[str, Any], name: str) -> MqttConnection:
    """The ``mqtt.*`` connection keys of a file without problems; the client id defaults to ``name``."""
    server: MqttServer = values["mqtt.server.uri"]
    return MqttConnection(
        server=values["mqtt.server.uri"],
        client_id=values["mqtt.client.id"] or name,
        session_expiry_seconds=values["mqtt.session.expiry.interval.seconds"],
        username=values["mqtt.username"],
        password=values["mqtt.password"],
        keepalive_seconds=values["mqtt.keepalive.interval.seconds"],
        connect_timeout_seconds=values["mqtt.connect.timeout.seconds"],
        tls=mqtt_tls(values) if server.tls else None,
    )


class ClientProperties(NamedTuple):
    """The checked librdkafka pass-through keys of one file."""

    common: dict[str, str]
    """``kafka.<property>``: every Kafka client of the connector (security, above all)."""
    producer: dict[str, str]
    consumer: dict[str, str]


def client_properties(
    raw: Mapping[str, str], problems: Problems, keys: tuple[KeySpec, ...], *, consumer: bool = False
) -> ClientProperties:
    """``kafka.<property>``, ``kafka.producer.*`` and (with ``consumer``) ``kafka.consumer.*``.

    ``keys`` are the connector's own keys (``kafka.bootstrap.servers``, a relay's ``kafka.group.id``):
    they keep their meaning and never pass through.
    """
    own = {s.key for s in keys}
    clients = (spec.PRODUCER_PREFIX, spec.CONSUMER_PREFIX)
    generic = {k: v for k, v in raw.items() if k not in own and not k.startswith(clients) and _known(k)}
    common = client_overrides(
        generic,
        spec.KAFKA_PREFIX,
        spec.COMMON_FORBIDDEN,
        problems,
        example="kafka.security.protocol=SASL_SSL",
        fixed={**spec.PRODUCER_GUARANTEE},
    )
    return ClientProperties(
        common,
        producer_overrides(raw, problems),
        _consumer_overrides(raw, problems) if consumer else {},
    )


def _known(key: str) -> bool:
    """A ``kafka.<librdkafka property>`` key; other keys are left to the unknown-key check."""
    prop = key.removeprefix(spec.KAFKA_PREFIX)
    return prop != key and knows(prop)


def kafka_connection(values: Mapping[str, Any], properties: ClientProperties) -> KafkaConnection:
    """``kafka.bootstrap.servers`` with the checked pass-through keys."""
    return KafkaConnection(
        values["kafka.bootstrap.servers"], properties.producer, properties.consumer, properties.common
    )


def _consumer_overrides(raw: Mapping[str, str], problems: Problems) -> dict[str, str]:
    return client_overrides(
        raw,
        spec.CONSUMER_PREFIX,
        spec.CONSUMER_FORBIDDEN,
        problems,
        example="kafka.consumer.session.timeout.ms=10000",
    )


def producer_overrides(raw: Mapping[str, str], problems: Problems) -> dict[str, str]:
    """``kafka.producer.*`` pass-through, refusing what would break the idempotent producer's order."""

    def refuse(prop: str, value: str) -> tuple[str, str] | None:
        if prop in spec.PRODUCER_LIMITED and value not in _IN_FLIGHT_ALLOWED:
            why = f"above {spec.MAX_IN_FLIGHT} the idempotent producer cannot keep order"
            return f"{value!r} is not allowed: {why}", f"use 1 to {spec.MAX_IN_FLIGHT}"
        return None

    return client_overrides(
        raw,
        spec.PRODUCER_PREFIX,
        spec.PRODUCER_FORBIDDEN,
        problems,
        example="kafka.producer.linger.ms=5",
        refuse=refuse,
        fixed=spec.PRODUCER_GUARANTEE,
    )


def dead_letter_topic(
    values: Mapping[str, Any],
    route_topics: Collection[str],
    problems: Problems,
    *,
    why_not_a_route_topic: str = "",
) -> str | None:
    """``errors.deadletterqueue.topic.name``, by default ``<name>-dlq``; never one of the routes' topics."""
    name: str | None = values["name"]
    dlq: str | None = values[DLQ_KEY]
    if dlq is None and name is not None:
        dlq = f"{name}-dlq"
        if problem := kafka_topic_problem(dlq):
            problems.add(DLQ_KEY, f"the default {problem}", "set it, or shorten name")
    if dlq is not None and dlq in route_topics:
        problems.add(DLQ_KEY, f"{dlq!r} is also a route's topic{why_not_a_route_topic}", "use its own topic")
    return dlq
