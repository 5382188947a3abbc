"""Every metric mqtt-kafka-sync exports: name, kind, unit, labels, meaning. The one list the code uses.

``docs/metrics.md`` lists the same metrics as operators see them in Prometheus (unit suffixes and
``_total`` added by the exporter); ``tests/unit/test_metrics_catalog.py`` compares that table with
what the exporter really exposes, so a rename is a conscious change of both.

Label values are bounded by configuration: connector and route names, task indexes, the fixed
reason / stage / action lists below, and the consumer groups, topics and partitions named in
configs. Never a device id or an MQTT topic.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

PREFIX = "mqtt_kafka_sync_"

Kind = Literal["counter", "gauge", "histogram"]

UNROUTED = "none"
"""The ``route`` label of messages no route matched (they go to the dead-letter topic)."""

INGEST_DLQ_REASONS = (
    "no-route",
    "bad-payload",
    "kafka-rejected",
    "kafka-topic-missing",
    "topic-too-long",
    "internal-error",
)
RELAY_DLQ_REASONS = (
    "no-route",
    "bad-key",
    "missing-header",
    "unsafe-placeholder",
    "bad-header",
    "expired",
    "mqtt-rejected",
)
OTHER = "other"
"""Where a reason not listed here is counted (a new reason someone forgot to add)."""

INGEST_ERRORS = ("kafka-retried", "dead-letter-refused", "kafka-client", "mqtt-redelivered")
"""``kafka-retried``: a delivery failed with a retriable error and the record was produced again;
``dead-letter-refused``: the dead-letter topic refused a record (the MQTT message stays unacknowledged
and the task reconnects); ``kafka-client``: an error librdkafka reported (a broker unreachable, ...);
``mqtt-redelivered``: the broker sent a QoS 1/2 message again (DUP set, or a packet id left
unacknowledged on the previous connection): each becomes a Kafka record again."""
RELAY_ERRORS = ("dead-letter-refused", "mqtt-republished", "mqtt-stalled", "kafka-client")
"""``mqtt-republished``: the broker lost a QoS 2 exchange and the command was published again;
``mqtt-stalled``: connected, commands in flight, no acknowledgement for a minute."""

INGEST_STAGES = ("awaiting-kafka", "held-by-throttle")
"""``awaiting-kafka``: received, not yet confirmed by Kafka (bounded by ``mqtt.receive.maximum``);
``held-by-throttle``: confirmed, acknowledgement held back by the lag throttle."""
RELAY_STAGES = ("buffered", "awaiting-ack")
"""``buffered``: read from Kafka, not yet published; ``awaiting-ack``: published (or sent to the
dead-letter topic), not yet acknowledged."""

THROTTLE_ACTIONS = ("increase", "hold", "decrease", "no-data")

MQTT_FAILURES = ("refused", "not_authorized", "bad_credentials", "tls", "subscribe_refused")
"""``connection_failures`` reasons of side ``mqtt`` (``mqtt/failures.py``): CONNACK 0x86 (and 3.1.1
code 4) ``bad_credentials``, 0x87 (3.1.1: 5) ``not_authorized``, any other refused CONNECT
``refused``, a failed TLS handshake ``tls``, a SUBACK refusing a filter ``subscribe_refused``."""
KAFKA_FAILURES = ("auth", "tls")
"""``connection_failures`` reasons of side ``kafka``: librdkafka's ``_AUTHENTICATION`` and ``_SSL``."""

LATENCY_BOUNDS = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
)
"""Bucket upper bounds, seconds, of every latency histogram (Prometheus ``le``; +Inf added)."""

TASK = ("connector", "task")
LAG = ("group", "topic", "partition")


@dataclass(frozen=True)
class MetricDef:
    name: str
    """The OpenTelemetry instrument name; Prometheus adds the unit suffix and ``_total``."""
    kind: Kind
    unit: str
    """UCUM, as OpenTelemetry wants it: ``s``, ``By``, ``{message}``, ``1``."""
    labels: tuple[str, ...]
    description: str

    @property
    def prometheus_name(self) -> str:
        """The name in the Prometheus exposition (what the doc table and the dashboards use)."""
        suffix = {"s": "_seconds", "By": "_bytes"}.get(self.unit, "")
        name = self.name if not suffix or self.name.endswith(suffix) else self.name + suffix
        return name + "_total" if self.kind == "counter" else name


def _m(name: str, kind: Kind, unit: str, labels: tuple[str, ...], description: str) -> MetricDef:
    return MetricDef(PREFIX + name, kind, unit, labels, description)


def _per_route(name: str, unit: str, description: str) -> MetricDef:
    """A counter of messages or bytes by route: the four series the probe writes side by side."""
    return _m(name, "counter", unit, (*TASK, "route"), description)


RECEIVED_MESSAGES = _per_route(
    "received_messages",
    "{message}",
    "Messages taken in: MQTT messages (ingest), Kafka records routed (relay); route 'none': no route.",
)
RECEIVED_BYTES = _per_route("received_bytes", "By", "Payload bytes of the messages taken in.")
DELIVERED_MESSAGES = _per_route(
    "delivered_messages",
    "{message}",
    "Messages delivered: records Kafka confirmed (ingest), commands the MQTT broker acknowledged (relay).",
)
DELIVERED_BYTES = _per_route("delivered_bytes", "By", "Value bytes of the messages delivered.")
DEAD_LETTERS = _m(
    "dead_letters",
    "counter",
    "{message}",
    (*TASK, "reason"),
    "Messages the dead-letter topic confirmed, by reason (the dlq.reason header).",
)
ERRORS = _m("errors", "counter", "{error}", (*TASK, "reason"), "Errors that did not dead-letter, by reason.")
KAFKA_DELIVERY_LATENCY = _m(
    "kafka_delivery_latency",
    "histogram",
    "s",
    TASK,
    "Ingest: from produce() to Kafka's acknowledgement of the record (librdkafka's own measure).",
)
END_TO_END_LATENCY = _m(
    "end_to_end_latency",
    "histogram",
    "s",
    TASK,
    "Ingest: from reading the MQTT PUBLISH off the socket to Kafka's acknowledgement (QoS 1 and 2).",
)
MQTT_CONNECTED = _m("mqtt_connected", "gauge", "1", TASK, "1 while the task's MQTT connection is up.")
KAFKA_CONNECTED = _m(
    "kafka_connected", "gauge", "1", TASK, "1 while the task's Kafka client has a broker connection up."
)
SUBSCRIBED = _m(
    "subscribed",
    "gauge",
    "1",
    TASK,
    "1 while the task's subscriptions are acknowledged (ingest) or it is in its consumer group (relay).",
)
MQTT_RECONNECTS = _m(
    "mqtt_reconnects",
    "counter",
    "{reconnect}",
    TASK,
    "MQTT connections lost (each followed by reconnecting).",
)
CONNECTION_FAILURES = _m(
    "connection_failures",
    "counter",
    "{attempt}",
    (*TASK, "side", "reason"),
    "Connection attempts a broker refused (or whose TLS handshake failed), by side and reason.",
)
NETWORK_LOOP_AGE = _m(
    "network_loop_age",
    "gauge",
    "s",
    TASK,
    "Seconds since the task's network thread last turned its loop (ingest: the MQTT loop; relay: the "
    "consume-publish loop). It stays below a second or two; growing, the thread is wedged, and "
    "/healthz fails once it passes --liveness-timeout.",
)
IN_FLIGHT = _m(
    "in_flight_messages", "gauge", "{message}", (*TASK, "stage"), "Messages in the task, by stage."
)
SHARDS_OWNED = _m(
    "shards_owned",
    "gauge",
    "{shard}",
    TASK,
    "Sharded mode (mqtt.subscription=sharded): shards whose MQTT session the task runs now.",
)
TASK_UP = _m("task_up", "gauge", "1", TASK, "1 while the task process is alive.")
TASK_READY = _m(
    "task_ready", "gauge", "1", TASK, "1 while the task counts as ready for /readyz (connected, subscribed)."
)
TASK_RESTARTS = _m(
    "task_restarts", "counter", "{restart}", TASK, "Times the supervisor started the task again."
)
CONSUMER_LAG = _m(
    "consumer_lag",
    "gauge",
    "{record}",
    LAG,
    "Records between the group's committed offset and the log end (relay groups, throttle.lag.groups).",
)
CONSUMER_TIME_LAG = _m(
    "consumer_time_lag",
    "gauge",
    "s",
    LAG,
    "Age of the oldest record the group has not consumed yet (0 without lag).",
)
THROTTLE_RATE = _m(
    "throttle_rate",
    "gauge",
    "{message}",
    TASK,
    "Messages/s the lag throttle permits now (observe: would permit).",
)
THROTTLE_LAG = _m("throttle_lag", "gauge", "{record}", TASK, "The lag the throttle's last decision acted on.")
THROTTLE_ENFORCING = _m(
    "throttle_enforcing", "gauge", "1", TASK, "1 when the throttle enforces its rate, 0 in observe mode."
)
THROTTLE_DECISION = _m(
    "throttle_decision",
    "gauge",
    "1",
    (*TASK, "action"),
    "1 for the action of the throttle's last decision, 0 for the others.",
)

METRICS: tuple[MetricDef, ...] = (
    RECEIVED_MESSAGES,
    RECEIVED_BYTES,
    DELIVERED_MESSAGES,
    DELIVERED_BYTES,
    DEAD_LETTERS,
    ERRORS,
    KAFKA_DELIVERY_LATENCY,
    END_TO_END_LATENCY,
    MQTT_CONNECTED,
    KAFKA_CONNECTED,
    SUBSCRIBED,
    MQTT_RECONNECTS,
    CONNECTION_FAILURES,
    NETWORK_LOOP_AGE,
    IN_FLIGHT,
    SHARDS_OWNED,
    TASK_UP,
    TASK_READY,
    TASK_RESTARTS,
    CONSUMER_LAG,
    CONSUMER_TIME_LAG,
    THROTTLE_RATE,
    THROTTLE_LAG,
    THROTTLE_ENFORCING,
    THROTTLE_DECISION,
)
