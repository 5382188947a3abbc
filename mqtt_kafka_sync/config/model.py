"""The typed, validated, frozen config model that the loader produces.

Nothing in here reads files or the environment: :mod:`mqtt_kafka_sync.config.loader` does that,
checks every key against :mod:`mqtt_kafka_sync.config.spec`, and builds these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

ValueFormat = Literal["bytes", "json"]

SOURCE_CONNECTOR_CLASS = "mqtt_kafka_sync.MqttSourceConnector"


class Secret(str):
    """A string that never shows its value when printed or logged."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "Secret('********')"

    def __str__(self) -> str:
        return "********"

    def reveal(self) -> str:
        return str.__str__(self)


@dataclass(frozen=True)
class MqttServer:
    scheme: Literal["tcp"]
    host: str
    port: int

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class RouteConfig:
    """``routes.<name>.*``: one mapping rule from an MQTT topic pattern to a Kafka topic and key."""

    name: str
    mqtt_topic: str
    """Pattern: levels are literals, ``{placeholder}`` (one level, captured), ``+`` or a final ``#``."""
    kafka_topic: str
    """Template over the pattern's placeholders, e.g. ``site-{site}``."""
    kafka_key: str | None
    """Template for the record key, e.g. ``{plant}.{device}``; ``None`` means the MQTT topic itself."""
    value_format: ValueFormat = "bytes"


@dataclass(frozen=True)
class SourceConnectorConfig:
    """``connector.class=mqtt_kafka_sync.MqttSourceConnector``: MQTT -> Kafka ingest."""

    name: str
    source: str
    """The file this came from, for error messages."""
    tasks_max: int
    mqtt_server: MqttServer
    mqtt_shared_group: str
    mqtt_qos: int
    mqtt_client_id: str
    """Prefix; task ``i`` connects as ``f"{mqtt_client_id}-{i}"``."""
    mqtt_topics: tuple[str, ...]
    """Filters to subscribe (without ``$share/<group>/``); by default derived from the routes."""
    routes: tuple[RouteConfig, ...]
    kafka_bootstrap_servers: str
    dlq_topic: str
    mqtt_username: str | None = None
    mqtt_password: Secret | None = None
    mqtt_keepalive_seconds: int = 30
    mqtt_session_expiry_seconds: int = 86_400
    mqtt_receive_maximum: int = 1_000
    mqtt_connect_timeout_seconds: float = 10.0
    mqtt_takeover_enabled: bool = True
    mqtt_takeover_delay_seconds: int = 10
    kafka_producer_overrides: dict[str, str] = field(default_factory=dict, repr=False)
    """``kafka.producer.<librdkafka key>`` pass-through (never the delivery-guarantee keys)."""

    def task_client_id(self, index: int) -> str:
        return f"{self.mqtt_client_id}-{index}"

    def shared_filters(self) -> tuple[str, ...]:
        return tuple(f"$share/{self.mqtt_shared_group}/{t}" for t in self.mqtt_topics)


ConnectorConfig = SourceConnectorConfig
