"""The publisher's PUBLISH encoder: packets that read back as what was meant, whatever the sizes,
and what it keeps per topic bounded and never a way around its checks."""

from __future__ import annotations

from dataclasses import replace

import pytest

from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.mqtt import packets
from mqtt_kafka_sync.mqtt import publisher as publisher_module
from mqtt_kafka_sync.mqtt.publisher import Command, PublishEncoder
from tests.unit.mqtt.test_relay_publisher import COMMAND


def _read(encoder: PublishEncoder, command: Command, packet_id: int = 7) -> packets.Publish:
    head, tail = encoder.encode(command)
    wire = head + (packet_id.to_bytes(2, "big") if command.qos else b"") + tail
    (packet,) = packets.PacketReader().feed_all(wire)
    assert isinstance(packet, packets.Publish)
    return packet


@pytest.mark.parametrize("qos", [0, 1, 2])
@pytest.mark.parametrize("payload_size", [0, 50, 200, 20_000, 3_000_000])
def test_a_publish_reads_back_as_the_command(qos: int, payload_size: int) -> None:
    command = replace(COMMAND, qos=qos, retain=qos == 2, payload=b"x" * payload_size)
    packet = _read(PublishEncoder(), command)
    assert (packet.topic, packet.payload, packet.qos, packet.retain, packet.dup) == (
        command.topic,
        command.payload,
        qos,
        qos == 2,
        False,
    )
    assert packet.packet_id == (7 if qos else 0)
    assert packet.user_properties == list(COMMAND.user_properties)
    assert packet.properties[packets.PROP_MESSAGE_EXPIRY] == 300
    assert packet.properties[packets.PROP_RESPONSE_TOPIC] == COMMAND.response_topic
    assert packet.properties[packets.PROP_CORRELATION_DATA] == b"commands/3/42"


def test_a_topic_seen_before_encodes_the_same_and_the_kept_topics_are_bounded(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(publisher_module, "TOPIC_CACHE_SIZE", 3)
    encoder = PublishEncoder()
    first = encoder.encode(COMMAND)
    assert encoder.encode(replace(COMMAND)) == first
    for n in range(10):
        command = replace(COMMAND, topic=f"t/{n}", response_topic=f"r/{n}")
        packet = _read(encoder, command)
        assert (packet.topic, packet.properties[packets.PROP_RESPONSE_TOPIC]) == (f"t/{n}", f"r/{n}")
    assert len(encoder._topics) <= 3 and len(encoder._responses) <= 3


def test_what_mqtt_cannot_carry_is_refused_even_for_a_topic_seen_before() -> None:
    encoder = PublishEncoder()
    encoder.encode(COMMAND)
    refused = [
        replace(COMMAND, qos=3),
        replace(COMMAND, topic="plants/+/commands"),
        replace(COMMAND, topic=""),
        replace(COMMAND, topic="t/" + "x" * 70_000),
        replace(COMMAND, correlation_data=b"c" * 70_000),
        replace(COMMAND, user_properties=(("big", "v" * 70_000),)),
        replace(COMMAND, response_topic="r" * 70_000),
    ]
    for command in refused:
        with pytest.raises(CommandError) as caught:
            encoder.encode(command)
        assert caught.value.reason == "mqtt-rejected"
    with pytest.raises(CommandError, match="70000 bytes does not fit MQTT's 65,535"):
        encoder.encode(replace(COMMAND, user_properties=(("ok", "v"), ("big", "v" * 70_000))))
