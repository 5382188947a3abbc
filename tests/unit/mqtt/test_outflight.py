"""The publisher's session (mqtt/outflight.py) without a network: what it writes, in which order,
after acknowledgements, a reconnect and a forget; and the acknowledgements it refuses."""

from __future__ import annotations

import struct

import pytest

from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt.outflight import Malformed, Outflight, read_acks


def _ack(kind: int, packet_id: int, reason: int = 0) -> bytes:
    return bytes((kind << 4, 3)) + struct.pack("!H", packet_id) + bytes((reason,))


def _add(flight: Outflight, qos: int = 1) -> int:
    mid = flight.stage(bytes((0x30 | qos << 1, 0)), b"", qos)
    flight.commit()
    return mid


def _written(flight: Outflight) -> list[tuple[int, int, int]]:
    """(type, flags, packet id) of every packet in ``flight.out``, which is then emptied."""
    out, found, pos = bytes(flight.out), [], 0
    while pos < len(out):
        found.append((out[pos] >> 4, out[pos] & 0x0F, (out[pos + 2] << 8) | out[pos + 3]))
        pos += 4
    flight.out.clear()
    return found


def test_a_window_of_two_writes_two_then_one_per_acknowledgement() -> None:
    flight = Outflight(2)
    first, second, third = (_add(flight) for _ in range(3))
    flight.take_writes()
    assert _written(flight) == [(p.PUBLISH, 0x2, first), (p.PUBLISH, 0x2, second)]
    assert flight.answered([(p.PUBACK, first, 0)]) == [(first, 0)]
    flight.take_writes()
    assert _written(flight) == [(p.PUBLISH, 0x2, third)]


def test_a_reconnect_continues_in_order_and_skips_what_was_forgotten() -> None:
    flight = Outflight(10)
    one, two, three = _add(flight, qos=2), _add(flight), _add(flight)
    flight.take_writes()
    flight.answered([(p.PUBREC, one, 0)])
    _written(flight)
    flight.forget([three])
    flight.reconnected(receive_maximum=65535)
    flight.take_writes()
    assert _written(flight) == [(p.PUBREL, 0x2, one), (p.PUBLISH, 0xA, two)]  # PUBREL; DUP, QoS 1


def test_staged_publishes_are_written_only_once_committed_in_order_and_take_fresh_ids() -> None:
    flight = Outflight(10)
    head = bytes((0x32, 0))
    staged = [flight.stage(head, b"", 1) for _ in range(3)]
    assert len(set(staged)) == 3
    flight.take_writes()
    assert _written(flight) == [] and len(flight) == 0
    assert flight.commit() is True  # the queue was empty: the network thread must be woken
    assert flight.commit() is False  # nothing staged
    later = flight.stage(head, b"", 1)
    assert later not in staged
    assert flight.commit() is False  # the first three still wait: it was told already
    flight.take_writes()
    assert _written(flight) == [(p.PUBLISH, 0x2, mid) for mid in [*staged, later]]


def test_packet_ids_in_use_are_never_handed_out_again() -> None:
    flight = Outflight(65535)
    kept = _add(flight)
    ids = {_add(flight) for _ in range(65533)}
    assert kept not in ids and len(ids) == 65533
    _add(flight)  # the 65,535th
    with pytest.raises(RuntimeError, match="no packet id left"):
        _add(flight)


@pytest.mark.parametrize(
    ("packet", "words"),
    [
        (_ack(p.PUBACK, 1, 0x01), "reason code 0x01"),
        (_ack(p.PUBCOMP, 1, 0x87), "reason code 0x87"),
        (bytes((0x41, 2, 0, 1)), "packet of type 4 (flags 0x1"),
        (bytes((0x30, 2, 0, 0)), "packet of type 3"),
    ],
)
def test_answers_a_publisher_cannot_take_are_protocol_errors(packet: bytes, words: str) -> None:
    with pytest.raises(Malformed, match=words.replace("(", r"\(")):
        read_acks(packet, [])


def test_acks_are_read_across_chunks() -> None:
    data = _ack(p.PUBACK, 1) + _ack(p.PUBACK, 2)[:3]
    acks: list[tuple[int, int, int]] = []
    taken, disconnect, pong = read_acks(data, acks)
    assert acks == [(p.PUBACK, 1, 0)] and taken == 5 and disconnect is None and not pong
    taken, disconnect, pong = read_acks(data[taken:] + _ack(p.PUBACK, 2)[3:] + b"\xd0\x00\xe0\x01\x8e", acks)
    assert acks[1:] == [(p.PUBACK, 2, 0)] and pong and disconnect == 0x8E


def _short(kind: int, packet_id: int) -> bytes:
    """A successful acknowledgement as Mosquitto writes it: no reason code, no properties."""
    return bytes((kind << 4, 2)) + struct.pack("!H", packet_id)


def test_a_read_of_short_acknowledgements_is_taken_whole_as_the_packet_loop_would() -> None:
    """A read of 4-byte acknowledgements only is taken at once; any other read packet by packet."""
    acks: list[tuple[int, int, int]] = []
    data = b"".join(_short(k, m) for k, m in [(p.PUBACK, 1), (p.PUBREC, 300), (p.PUBCOMP, 65535)])
    assert read_acks(data, acks) == (12, None, False)
    assert acks == [(p.PUBACK, 1, 0), (p.PUBREC, 300, 0), (p.PUBCOMP, 65535, 0)]
    acks.clear()
    assert read_acks(_short(p.PUBACK, 7) + b"\xd0\x00\xd0\x00", acks) == (8, None, True)
    assert acks == [(p.PUBACK, 7, 0)]
    acks.clear()
    assert read_acks(_short(p.PUBACK, 7) + _ack(p.PUBACK, 8) + _short(p.PUBACK, 9)[:3], acks) == (
        9,
        None,
        False,
    )
    assert acks == [(p.PUBACK, 7, 0), (p.PUBACK, 8, 0)]
    with pytest.raises(Malformed, match="type 4 \\(flags 0x2"):
        read_acks(bytes((0x42, 2, 0, 1)), [])
