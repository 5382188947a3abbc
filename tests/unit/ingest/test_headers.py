"""The headers of an ingested message, built on the way in and again for a failed delivery."""

from __future__ import annotations

from mqtt_kafka_sync.ingest.headers import mqtt_headers
from mqtt_kafka_sync.mqtt import packets as p


def test_headers_carry_topic_qos_retain_then_the_devices_properties_renamed() -> None:
    message = p.Publish("a/b", b"v", 1, True, False, 7, [("mqtt.topic", "spoof"), ("site", "x")])
    assert mqtt_headers(message) == [
        ("mqtt.topic", "a/b"),
        ("mqtt.qos", b"1"),
        ("mqtt.retain", b"true"),
        ("mqtt.user.mqtt.topic", "spoof"),
        ("site", "x"),
    ]


def test_headers_built_again_are_equal_and_each_list_is_its_own() -> None:
    message = p.Publish("a/b", b"v", 2, False, False, 7)
    first, again = mqtt_headers(message), mqtt_headers(message)
    assert first == again == [("mqtt.topic", "a/b"), ("mqtt.qos", b"2"), ("mqtt.retain", b"false")]
    first.append(("extra", "x"))
    assert len(mqtt_headers(message)) == 3


def test_publishes_without_properties_share_empty_ones_and_with_properties_get_their_own() -> None:
    plain = p.encode_publish("t/1", b"a", qos=1, retain=False, packet_id=1)
    also = p.encode_publish("t/2", b"b", qos=1, retain=False, packet_id=2)
    first, second = p.PacketReader().feed_all(plain + also)
    assert isinstance(first, p.Publish) and isinstance(second, p.Publish)
    assert first.user_properties == [] and first.properties == {}
    assert first.user_properties is second.user_properties
    assert first.properties is second.properties
