"""The Kafka headers of an ingested MQTT message: ``mqtt.topic``, ``mqtt.qos``, ``mqtt.retain`` and
the device's MQTT 5 user properties.

Built once per message on the way in and handed to librdkafka, which copies them; nothing keeps
them after that. A delivery that fails builds them again from the message (:func:`mqtt_headers`
is deterministic): holding each in-flight message's list and its ``mqtt.topic`` tuple until Kafka
answered cost ~150 bytes per message, 0.6 MB at a window of 4,000 (docs/benchmarks.md).
The ``mqtt.qos`` and ``mqtt.retain`` pairs are shared constants, not built per message.
"""

from __future__ import annotations

from mqtt_kafka_sync.kafka.producer import Headers
from mqtt_kafka_sync.mqtt.packets import Publish

RESERVED_HEADER_PREFIXES = ("mqtt.", "dlq.", "kafka.", "replay.")
"""Header names the bridge writes itself. A device's MQTT 5 user property with such a name is passed
on as ``mqtt.user.<name>``, so a consumer reading the last ``mqtt.topic`` header reads ours."""
DEVICE_PROPERTY_PREFIX = "mqtt.user."
_QOS = (("mqtt.qos", b"0"), ("mqtt.qos", b"1"), ("mqtt.qos", b"2"))
_RETAIN = (("mqtt.retain", b"false"), ("mqtt.retain", b"true"))


def device_properties(properties: list[tuple[str, str]]) -> Headers:
    """MQTT 5 user properties as headers, reserved names renamed ``mqtt.user.<name>``."""
    return [
        (DEVICE_PROPERTY_PREFIX + name if name.startswith(RESERVED_HEADER_PREFIXES) else name, value)
        for name, value in properties
    ]


def mqtt_headers(message: Publish) -> Headers:
    """The headers of ``message``'s Kafka record (and of its dead-letter copy)."""
    headers: Headers = [("mqtt.topic", message.topic), _QOS[message.qos], _RETAIN[message.retain]]
    if message.user_properties:
        headers.extend(device_properties(message.user_properties))
    return headers
