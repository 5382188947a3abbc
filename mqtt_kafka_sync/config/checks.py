"""Checks for values with structure: URIs, server lists, MQTT filters, Kafka topic names (TLS files:
:mod:`~mqtt_kafka_sync.config.tls_files`)."""

from __future__ import annotations

import itertools
import re
from typing import Literal, cast
from urllib.parse import urlsplit

from mqtt_kafka_sync.config.keyspec import BadValue
from mqtt_kafka_sync.config.model import MQTT_TLS_SCHEMES, MqttServer
from mqtt_kafka_sync.routing.pattern import (
    PatternError,
    TopicPattern,
    check_filter,
    compile_pattern,
    overlaps,
)
from mqtt_kafka_sync.routing.router import kafka_topic_problem

_HOST_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+):([0-9]{1,5})")
_SERVER_FIX = "write tcp://host:port or ssl://host:port, e.g. tcp://127.0.0.1:1883 or ssl://broker:8883"
_SCHEMES = ("tcp", *MQTT_TLS_SCHEMES)


def mqtt_server(text: str) -> MqttServer:
    """``tcp://host:port``, or ``ssl://`` / ``mqtts://`` for TLS; the port is always written."""
    scheme, sep, _ = text.partition("://")
    if not sep:
        raise BadValue(f"{text!r} is not a URI", _SERVER_FIX)
    scheme = scheme.lower()
    if scheme not in _SCHEMES:
        raise BadValue(f"scheme {scheme!r} is not supported; use tcp://, ssl:// or mqtts://", _SERVER_FIX)
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise BadValue("the URI must not hold credentials", "set mqtt.username and mqtt.password instead")
    try:
        port = parts.port
    except ValueError:
        port = 0
    if not parts.hostname or not port or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise BadValue(f"{text!r} is not {scheme}://host:port", _SERVER_FIX)
    return MqttServer(cast(Literal["tcp", "ssl", "mqtts"], scheme), parts.hostname, port)


def bootstrap_servers(items: tuple[str, ...]) -> str:
    for item in items:
        found = _HOST_PORT.fullmatch(item)
        if found is None or not 0 < int(found.group(2)) < 65536:
            raise BadValue(f"{item!r} is not host:port", "e.g. 127.0.0.1:9092,broker2:9092")
    return ",".join(items)


def mqtt_filters(items: tuple[str, ...]) -> tuple[str, ...]:
    for item in items:
        try:
            check_filter(item)
        except PatternError as exc:
            raise BadValue(f"{item!r} is not a valid MQTT filter: {exc}", "e.g. plants/+/devices/#") from None
        if items.count(item) > 1:
            raise BadValue(f"{item!r} is listed twice", "list each filter once")
    problem = overlap_problem(items)
    if problem:
        raise BadValue(problem, "keep only the broader filter, or use filters that do not overlap")
    return items


def overlap_problem(filters: tuple[str, ...]) -> str | None:
    """Overlapping subscriptions make the broker deliver a message once per matching filter."""
    for first, second in itertools.combinations(filters, 2):
        if overlaps(first, second):
            return f"filters {first!r} and {second!r} overlap, so a message matching both arrives twice"
    return None


def kafka_topic(text: str) -> str:
    problem = kafka_topic_problem(text)
    if problem:
        raise BadValue(problem, "e.g. telemetry-dlq")
    return text


def route_pattern(text: str) -> TopicPattern:
    try:
        return compile_pattern(text)
    except PatternError as exc:
        fix = "e.g. plants/{plant}/devices/{device}/#"
        raise BadValue(f"{text!r} is not a valid pattern: {exc}", fix) from None


def kafka_topic_or_pattern(text: str) -> str:
    """A topic name, or a regular expression over topic names when it starts with ``^``."""
    if not text.startswith("^"):
        return kafka_topic(text)
    try:
        re.compile(text)
    except re.error as exc:
        raise BadValue(f"{text!r} is not a valid regular expression: {exc}", "e.g. ^commands-.*") from None
    return text
