"""Every error this package raises derives from :class:`SyncError`.

::

    SyncError                       (retriable = False unless stated)
    ├── ConfigError                 a config file is wrong; carries every problem found
    ├── RoutingError                an MQTT message no route can place (goes to the DLQ)
    ├── DecodeError                 a payload the route's value format rejects (goes to the DLQ);
    │                               ``field`` names the schema field at fault, when there is one
    ├── MqttError                   the MQTT side failed
    │   ├── MqttConnectError        the broker refused us (CONNACK, TLS handshake) or did not answer;
    │   │                           ``retriable`` as the refusal says, ``reason`` a metric label
    │   └── MqttProtocolError       the broker sent something we cannot accept
    ├── KafkaDeliveryError          a record Kafka would not take; carries topic, partition, offset
    │                               (retriable for a topic that may yet appear; ``fatal`` when the
    │                               producer cannot go on)
    ├── SchemaRegistryError         the schema registry refused a schema or could not be reached
    │                               (retriable when it did not answer)
    ├── CommandError                a Kafka record the command relay will not publish (goes to the DLQ)
    ├── LagReadError                retriable: consumer lag could not be read (Kafka did not answer)
    └── StackError                  the local development stack could not start

``retriable`` tells a caller whether trying the same thing again later can succeed.
Errors about a message carry where it came from and where it was going, so the log line
and the dead-letter headers can name them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class SyncError(Exception):
    """Root of all mqtt-kafka-sync errors."""

    retriable: bool = False


@dataclass(frozen=True)
class ConfigProblem:
    """One thing wrong with a config file: where, what, and what would be right."""

    source: str
    key: str
    problem: str
    fix: str = ""

    def __str__(self) -> str:
        text = f"{self.source}: {self.key}: {self.problem}"
        return f"{text} ({self.fix})" if self.fix else text


class ConfigError(SyncError):
    """One or more config problems, all reported together."""

    def __init__(self, problems: Sequence[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class MessageError(SyncError):
    """An error about one MQTT message; ``reason`` is a short stable code for headers and metrics."""

    reason = "error"

    def __init__(self, detail: str, *, mqtt_topic: str = "") -> None:
        self.detail = detail
        self.mqtt_topic = mqtt_topic
        super().__init__(f"{detail} (mqtt topic {mqtt_topic!r})" if mqtt_topic else detail)


class RoutingError(MessageError):
    reason = "no-route"


class DecodeError(MessageError):
    reason = "bad-payload"

    def __init__(self, detail: str, *, mqtt_topic: str = "", field: str | None = None) -> None:
        # The schema field the payload got wrong, dotted and indexed ("readings[3].value"), if any.
        self.field = field
        super().__init__(detail, mqtt_topic=mqtt_topic)


class MqttError(SyncError):
    pass


class MqttConnectError(MqttError):
    """Connecting failed. The retry loops read ``retriable``: False means the same attempt cannot
    succeed until someone changes a config (ours or the broker's), so it is tried again only at the
    slowest pace and reported as needing an operator. Subclasses (a refused CONNACK, a failed TLS
    handshake) set ``reason``, the ``connection_failures`` metric's label."""

    retriable = True
    reason = "refused"


class MqttProtocolError(MqttError):
    pass


class KafkaDeliveryError(SyncError):
    def __init__(
        self,
        detail: str,
        *,
        topic: str,
        partition: int | None = None,
        offset: int | None = None,
        retriable: bool = False,
        code: int | None = None,
        fatal: bool = False,
    ) -> None:
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.retriable = retriable
        self.code = code
        """librdkafka's error code, when the error came from it."""
        self.fatal = fatal
        """The client cannot go on (a fatal idempotent-producer error): the task must restart."""
        self.detail = detail
        super().__init__(f"{detail} (topic {topic}, partition {partition}, offset {offset})")


class CommandError(SyncError):
    """A command record the relay dead-letters instead of publishing; ``reason`` is a stable code.

    Reasons: ``no-route``, ``bad-key``, ``missing-header``, ``unsafe-placeholder``, ``bad-header``,
    ``expired``, ``mqtt-rejected``. ``mqtt_topic`` is the rendered topic when there was one.
    """

    def __init__(self, reason: str, detail: str, *, mqtt_topic: str = "") -> None:
        self.reason = reason
        self.detail = detail
        self.mqtt_topic = mqtt_topic
        super().__init__(f"{reason}: {detail}")


class LagReadError(SyncError):
    """Kafka did not answer a lag query; a throttle holds its rate and asks again next interval."""

    retriable = True


class SchemaRegistryError(SyncError):
    """The schema registry refused a schema (incompatible, unknown subject) or did not answer."""

    def __init__(self, detail: str, *, retriable: bool = False) -> None:
        self.retriable = retriable
        super().__init__(detail)


class StackError(SyncError):
    """The local Kafka/Mosquitto stack could not be installed or started; the message says why."""
