"""What the ingest subscriber is told, shared by its parts (:mod:`~mqtt_kafka_sync.mqtt.subscriber`,
:mod:`~mqtt_kafka_sync.mqtt.connection`, :mod:`~mqtt_kafka_sync.mqtt.subscriptions`)."""

from __future__ import annotations

from dataclasses import dataclass

from mqtt_kafka_sync.config.model import (
    MQTT_CONNECT_TIMEOUT_S,
    MQTT_KEEPALIVE_S,
    MQTT_RECEIVE_MAXIMUM,
    MQTT_RECEIVE_MAXIMUM_BYTES,
    MQTT_SESSION_EXPIRY_S,
    MqttTls,
)
from mqtt_kafka_sync.mqtt import packets as p

LOGGER_NAME = "mqtt_kafka_sync.mqtt.subscriber"
"""The one logger of every part of the subscriber: its lines kept their name when it was split, so
logging configuration and log filters written for it still apply."""


@dataclass(frozen=True)
class SubscriberSettings:
    host: str
    port: int
    client_id: str
    filters: tuple[str, ...]
    """Data subscriptions at ``qos``; empty for a session we only drain (no SUBSCRIBE sent)."""
    qos: int
    keepalive: int = MQTT_KEEPALIVE_S
    session_expiry: int = MQTT_SESSION_EXPIRY_S
    receive_maximum: int = MQTT_RECEIVE_MAXIMUM
    receive_maximum_bytes: int = MQTT_RECEIVE_MAXIMUM_BYTES
    """Most message bytes unacknowledged at once (0: no limit; see
    :func:`~mqtt_kafka_sync.mqtt.subscriber.message_bytes`); one message always gets through."""
    connect_timeout: float = MQTT_CONNECT_TIMEOUT_S
    username: str | None = None
    password: str | None = None
    will: p.Will | None = None
    control_filters: tuple[str, ...] = ()
    """Extra subscriptions at QoS 0 (membership records), never acknowledged."""
    reconnect_max_delay: float = 10.0
    tls: MqttTls | None = None
    """``mqtt.ssl.*`` when the broker is reached over TLS; the files are read at every connect."""
