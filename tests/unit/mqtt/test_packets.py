"""MQTT 5 codec: what we encode decodes to the same thing, in any split of the byte stream."""

from __future__ import annotations

import pytest

from mqtt_kafka_sync.errors import MqttProtocolError
from mqtt_kafka_sync.mqtt import packets as p


def _publish_with_props(
    topic: str, payload: bytes, qos: int, packet_id: int, user: list[tuple[str, str]]
) -> bytes:
    props = p.encode_properties(
        [(p.PROP_USER_PROPERTY, pair) for pair in user] + [(p.PROP_MESSAGE_EXPIRY, 60)]
    )
    body = p._str(topic) + (packet_id.to_bytes(2, "big") if qos else b"") + props + payload
    return bytes(((p.PUBLISH << 4) | (qos << 1) | 0x08,)) + p.encode_varint(len(body)) + body


@pytest.mark.parametrize("value", [0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, 268_435_455])
def test_varint_round_trip(value: int) -> None:
    assert p._read_varint(p.encode_varint(value), 0) == (value, len(p.encode_varint(value)))


@pytest.mark.parametrize(
    ("qos", "payload", "user"),
    [
        (0, b"", []),
        (1, b"x" * 200, []),
        (2, b"\x00\xff" * 5000, [("k", "v"), ("k", "v2"), ("trace", "abc")]),
        (1, b"z" * 20_000, []),  # a remaining length of three bytes
    ],
)
def test_publish_decodes_in_every_split(qos: int, payload: bytes, user: list[tuple[str, str]]) -> None:
    wire = _publish_with_props("plants/p1/devices/d1/telemetry", payload, qos, 4242, user) + b"\xd0\x00"
    for split in (1, 2, 3, 7, len(wire) // 2, len(wire) - 1):
        reader = p.PacketReader()
        got = reader.feed_all(wire[:split]) + reader.feed_all(wire[split:])
        publish, pingresp = got
        assert isinstance(pingresp, p.Ack) and pingresp.kind == p.PINGRESP
        assert isinstance(publish, p.Publish)
        assert (publish.topic, publish.payload, publish.qos, publish.dup) == (
            "plants/p1/devices/d1/telemetry",
            payload,
            qos,
            True,
        )
        assert publish.packet_id == (4242 if qos else 0)
        assert publish.user_properties == user
        assert publish.properties[p.PROP_MESSAGE_EXPIRY] == 60


def test_acks_and_connack() -> None:
    reader = p.PacketReader()
    connack_props = p.encode_properties([(p.PROP_RECEIVE_MAXIMUM, 20), (p.PROP_ASSIGNED_CLIENT_ID, "c")])
    wire = (
        bytes((0x20,))
        + p.encode_varint(2 + len(connack_props))
        + b"\x01\x00"
        + connack_props
        + p.encode_ack(p.PUBREL, 7)
        + b"\x90\x05\x00\x09\x00\x01\x9e"  # SUBACK id 9: granted QoS 1, refused 0x9e
        + b"\xe0\x02\x8e\x00"  # DISCONNECT: session taken over
    )
    connack, pubrel, suback, disconnect = reader.feed_all(wire)
    assert isinstance(connack, p.Ack) and connack.session_present and connack.reason_codes == (0,)
    assert connack.properties[p.PROP_RECEIVE_MAXIMUM] == 20
    assert isinstance(pubrel, p.Ack) and (pubrel.kind, pubrel.packet_id) == (p.PUBREL, 7)
    assert isinstance(suback, p.Ack) and suback.reason_codes == (1, 0x9E)
    assert isinstance(disconnect, p.Ack) and disconnect.reason_codes == (0x8E,)


def test_encoders_produce_expected_bytes() -> None:
    assert p.encode_ack(p.PUBACK, 0x1234) == b"\x40\x02\x12\x34"
    assert p.encode_ack(p.PUBREC, 1) == b"\x50\x02\x00\x01"
    assert p.encode_disconnect() == b"\xe0\x00"
    assert p.encode_disconnect(0, 0) == b"\xe0\x07\x00\x05\x11\x00\x00\x00\x00"
    sub = p.encode_subscribe(3, [("$share/g/a/#", 1), ("m/+", 0)])
    assert sub[0] == 0x82 and sub.endswith(b"m/+\x00")
    connect = p.encode_connect(
        "cid",
        keepalive=30,
        clean_start=False,
        session_expiry=3600,
        receive_maximum=100,
        will=p.Will("w", b"gone", qos=1, retain=True),
    )
    assert connect[0] == 0x10 and b"MQTT\x05" in connect and connect.count(b"gone") == 1


def test_a_batch_of_acks_is_the_acks_one_by_one() -> None:
    ids = [1, 0x1234, 0xFFFF, 255, 256]
    words = [(p.PUBACK_WORD if i % 2 else p.PUBREC_WORD) | pid for i, pid in enumerate(ids)]
    one_by_one = b"".join(p.encode_ack(p.PUBACK if i % 2 else p.PUBREC, pid) for i, pid in enumerate(ids))
    assert p.encode_acks(words) == one_by_one


def test_malformed_input_is_a_protocol_error() -> None:
    with pytest.raises(MqttProtocolError):
        p.PacketReader().feed_all(b"\x30\xff\xff\xff\xff\x01")
    with pytest.raises(MqttProtocolError):
        p.PacketReader().feed_all(b"\x10\x00")  # CONNECT is never sent to a client
    with pytest.raises(MqttProtocolError):
        p.PacketReader(max_packet_size=10).feed_all(b"\x30\x20" + b"\x00" * 32)


def test_packets_left_early_stay_buffered_in_order() -> None:
    wire = b"".join(p.encode_publish(f"t/{i}", b"x", qos=1, retain=False, packet_id=i) for i in range(1, 6))
    reader = p.PacketReader()
    reader.feed(wire[:-3])  # the last packet is incomplete
    taken = []
    for packet in reader.packets():
        taken.append(packet)
        if len(taken) == 2:
            break
    assert reader.stopped_early
    reader.feed(wire[-3:])
    rest = list(reader.packets())
    assert not reader.stopped_early and reader.buffered == 0
    assert [pk.packet_id for pk in taken + rest if isinstance(pk, p.Publish)] == [1, 2, 3, 4, 5]
