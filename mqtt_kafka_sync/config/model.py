"""The typed, validated, frozen config model that the loader produces.

Nothing in here reads files or the environment: :mod:`mqtt_kafka_sync.config.loader` does that,
checks every key against :mod:`mqtt_kafka_sync.config.spec`, and builds these objects.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from mqtt_kafka_sync.codec.values import ValueFormat
from mqtt_kafka_sync.secret import Secret

if TYPE_CHECKING:
    from mqtt_kafka_sync.codec.json_avro import UnknownFields
    from mqtt_kafka_sync.codec.registry_settings import RegistrySettings
    from mqtt_kafka_sync.codec.schema import AvroSchema

__all__ = ["Secret", "ValueFormat"]

# Defaults used by the model, the key spec (and so the docs) and the clients alike: one place.
MQTT_KEEPALIVE_S = 30
MQTT_CONNECT_TIMEOUT_S = 10.0
# Where the two connectors differ (docs/config-reference.md says why for each key):
MQTT_SESSION_EXPIRY_S = 86_400
"""An ingest task's session: holds what the broker queues while the task is away."""
RELAY_MQTT_SESSION_EXPIRY_S = 3_600
"""A relay task's session: only has to outlive reconnects of one process."""
# The source connector's own:
MQTT_RECEIVE_MAXIMUM = 1_000  # 4,000 until issue 16: ~5 MB more per task, no faster (docs/benchmarks.md)
MQTT_RECEIVE_MAXIMUM_BYTES = 16 * 2**20
MQTT_TOPIC_MAX_LENGTH = 1_024
MQTT_TOPIC_CACHE_MAX_BYTES = 16 * 2**20
MQTT_TAKEOVER_DELAY_S = 10
MQTT_SHARDS_SESSION_TIMEOUT_MS = 10_000
ERRORS_RETRY_TIMEOUT_MS = 60_000
# The command relay's own:
RELAY_MQTT_MAX_INFLIGHT = 1_000
RELAY_MQTT_PUBLISH_MAX_ATTEMPTS = 5

SubscriptionMode = Literal["shared", "sharded"]
"""``mqtt.subscription``: one shared subscription over all tasks, or sessions owned by shards."""

SOURCE_CONNECTOR_CLASS = "mqtt_kafka_sync.MqttSourceConnector"
RELAY_CONNECTOR_CLASS = "mqtt_kafka_sync.KafkaCommandRelayConnector"


MQTT_TLS_SCHEMES = ("ssl", "mqtts")
"""URI schemes of MQTT over TLS (both mean the same; ``mqtts`` is the IANA name)."""


@dataclass(frozen=True)
class MqttServer:
    scheme: Literal["tcp", "ssl", "mqtts"]
    host: str
    port: int

    @property
    def tls(self) -> bool:
        return self.scheme in MQTT_TLS_SCHEMES

    @property
    def uri(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.scheme}://{host}:{self.port}"


@dataclass(frozen=True)
class MqttTls:
    """``mqtt.ssl.*``: how a task proves the broker is the broker, and itself to the broker.

    Only paths are kept: :mod:`mqtt_kafka_sync.mqtt.tls` reads the files again at every (re)connect,
    so a certificate rotated on disk is used without a restart.
    """

    ca_location: Path | None = None
    """PEM CA bundle the broker's certificate must chain to; None: the system trust store."""
    certificate_location: Path | None = None
    """Client certificate (PEM, may hold its chain) for mutual TLS; None: no client certificate."""
    key_location: Path | None = None
    """Its private key (PEM); None: the key is in the certificate file."""
    key_password: Secret | None = field(default=None, repr=False)
    check_hostname: bool = True
    """``mqtt.ssl.endpoint.identification.algorithm=https``: the certificate must name the host."""


@dataclass(frozen=True)
class MqttConnection:
    """``mqtt.*`` keys every connector shares: where the broker is and how a task connects to it."""

    server: MqttServer
    client_id: str
    """Prefix: each connector adds the task index (and the relay a random part) to it."""
    session_expiry_seconds: int
    """No default: the connectors differ,
    :data:`MQTT_SESSION_EXPIRY_S` for a source, :data:`RELAY_MQTT_SESSION_EXPIRY_S` for a relay."""
    username: str | None = None
    password: Secret | None = None
    keepalive_seconds: int = MQTT_KEEPALIVE_S
    connect_timeout_seconds: float = MQTT_CONNECT_TIMEOUT_S
    tls: MqttTls | None = None
    """Set exactly when the server URI is ``ssl://`` or ``mqtts://``."""


@dataclass(frozen=True)
class KafkaConnection:
    """Where Kafka is and how every client of a connector (or of a command) reaches it.

    The pass-through dicts hold librdkafka settings; secret ones (``sasl.password``, ...) as
    :class:`Secret`. ``mqtt_kafka_sync.kafka.settings.client_settings`` gives each client its own.
    """

    bootstrap_servers: str
    producer_overrides: dict[str, str] = field(default_factory=dict, repr=False)
    """``kafka.producer.<librdkafka key>`` (never the delivery-guarantee keys): the ingest producer,
    the relay's dead-letter producer."""
    consumer_overrides: dict[str, str] = field(default_factory=dict, repr=False)
    """``kafka.consumer.<librdkafka key>`` (never the keys the relay's guarantee needs); a source
    connector takes none."""
    common: dict[str, str] = field(default_factory=dict, repr=False)
    """``kafka.<librdkafka key>`` (or a command's ``--command-config``): every client, below the
    ``*_overrides`` of its kind. Security (``security.protocol``, ``sasl.*``, ``ssl.*``) goes here."""


@dataclass(frozen=True)
class AvroValueConfig:
    """``routes.<route>.value.*`` of an Avro route."""

    schema: AvroSchema | None
    """The writer schema from a ``.avsc`` file; None when it is the latest version of ``subject``."""
    subject: str | None
    """Registry subject: where ``schema`` is registered, or where the schema comes from."""
    fields: tuple[tuple[str, str], ...] = ()
    """``(record field, template over the route's placeholders)``, filled from the MQTT topic."""
    unknown_fields: UnknownFields = "reject"
    registry: RegistrySettings | None = None
    """None: single-object encoding."""


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
    value: AvroValueConfig | None = None
    """``routes.<name>.value.*`` of an ``avro`` route: schema, topic-filled fields, registry."""

    @property
    def field_templates(self) -> tuple[tuple[str, str], ...]:
        """``(record field, template)`` the router renders from the topic (``value.fields.*``)."""
        return self.value.fields if self.value is not None else ()


@dataclass(frozen=True)
class ThrottleConfig:
    """``throttle.*``: pace MQTT acknowledgements by the lag of named consumer groups (docs/replay.md).

    Rates and the step are for the whole connector; its tasks share them evenly.
    """

    groups: tuple[str, ...]
    """Consumer groups whose lag, on the topics the routes write, steers the rate."""
    lag_high: int
    """Records behind (a group's total) above which the rate halves every interval."""
    lag_low: int
    """Records behind below which the rate grows by ``step_max`` every interval."""
    rate_min: float
    """Floor, records/s: live traffic always gets this much."""
    rate_max: float
    """Cap, records/s."""
    step_max: float
    """Most the rate may rise in one interval, records/s (the additive increase)."""
    interval_seconds: float
    """Seconds between lag reads."""
    mode: Literal["enforce", "observe"] = "enforce"
    """``observe``: compute and expose the rate, but never hold an acknowledgement back."""


@dataclass(frozen=True)
class ShardsConfig:
    """``mqtt.shards*``: sessions owned by shards, shards assigned by a Kafka consumer group."""

    filters: tuple[str, ...]
    """Shard ``i`` subscribes to ``filters[i]`` and is partition ``i`` of ``topic``."""
    client_ids: tuple[str, ...]
    """Shard ``i``'s MQTT client id (from the filter, not the worker)."""
    topic: str
    group: str
    session_timeout_ms: int = MQTT_SHARDS_SESSION_TIMEOUT_MS


@dataclass(frozen=True)
class SourceConnectorConfig:
    """``connector.class=mqtt_kafka_sync.MqttSourceConnector``: MQTT -> Kafka ingest."""

    name: str
    source: str
    """The file this came from, for error messages."""
    tasks_max: int
    mqtt: MqttConnection
    """Task ``i`` connects as ``f"{mqtt.client_id}-{i}"``."""
    mqtt_shared_group: str
    mqtt_qos: int
    mqtt_topics: tuple[str, ...]
    """Filters to subscribe (without ``$share/<group>/``); by default derived from the routes."""
    routes: tuple[RouteConfig, ...]
    kafka: KafkaConnection
    dlq_topic: str
    mqtt_receive_maximum: int = MQTT_RECEIVE_MAXIMUM
    mqtt_receive_maximum_bytes: int = MQTT_RECEIVE_MAXIMUM_BYTES
    mqtt_topic_max_length: int = MQTT_TOPIC_MAX_LENGTH
    mqtt_topic_cache_max_bytes: int = MQTT_TOPIC_CACHE_MAX_BYTES
    errors_retry_timeout_ms: int = ERRORS_RETRY_TIMEOUT_MS
    mqtt_takeover_enabled: bool = True
    mqtt_takeover_delay_seconds: int = MQTT_TAKEOVER_DELAY_S
    throttle: ThrottleConfig | None = None
    """``throttle.*``: pace MQTT acknowledgements by consumer lag; None when no group is named."""
    shards: ShardsConfig | None = None
    """``mqtt.subscription=sharded``: the shards and their coordination; None in shared mode."""

    @property
    def sharded(self) -> bool:
        return self.shards is not None

    def task_client_id(self, index: int) -> str:
        return f"{self.mqtt.client_id}-{index}"

    def shared_filters(self) -> tuple[str, ...]:
        return tuple(f"$share/{self.mqtt_shared_group}/{t}" for t in self.mqtt_topics)


@dataclass(frozen=True)
class RelayRouteConfig:
    """``routes.<name>.*`` of a command relay: Kafka records of a topic -> MQTT commands."""

    name: str
    kafka_topic: str
    """A topic name, or a regular expression over topic names when it starts with ``^``."""
    kafka_key: str
    """Template that parses the record key into placeholders, e.g. ``{plant}.{device}``."""
    mqtt_topic: str
    """Template over the key's placeholders and ``{header.<name>}``, e.g. ``plants/{plant}/commands``."""
    mqtt_qos: int = 1
    mqtt_retain: bool = False
    message_expiry_seconds: int | None = None
    """MQTT 5 message expiry, counted from the record's Kafka timestamp; None: commands never expire."""
    response_topic: str | None = None
    """Template for the MQTT 5 response topic a device answers on; None: no response topic."""
    correlation_header: str | None = None
    """Kafka header whose value becomes the MQTT 5 correlation data; by default ``topic/partition/offset``."""


@dataclass(frozen=True)
class RelayConnectorConfig:
    """``connector.class=mqtt_kafka_sync.KafkaCommandRelayConnector``: Kafka -> MQTT commands."""

    name: str
    source: str
    """The file this came from, for error messages."""
    tasks_max: int
    mqtt: MqttConnection
    """Task ``i`` of one process connects as ``f"{mqtt.client_id}-{i}-<random>"``."""
    routes: tuple[RelayRouteConfig, ...]
    kafka: KafkaConnection
    """The consumer's settings, and the dead-letter producer's."""
    kafka_group_id: str
    dlq_topic: str
    mqtt_max_inflight: int = RELAY_MQTT_MAX_INFLIGHT
    mqtt_publish_max_attempts: int = RELAY_MQTT_PUBLISH_MAX_ATTEMPTS
    """Sends of one command before it is dead-lettered, counting those the broker answered with a
    protocol error or ended the connection for (a plain network loss counts none)."""

    def kafka_topics(self) -> tuple[str, ...]:
        """What the consumer subscribes to: every route's topic or ``^`` pattern, once each."""
        return tuple(dict.fromkeys(r.kafka_topic for r in self.routes))


ConnectorConfig = SourceConnectorConfig | RelayConnectorConfig
