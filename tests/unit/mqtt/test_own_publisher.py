"""The relay's own MQTT 5 publisher (mqtt/outgoing.py) against tests/scripted_broker.py over loopback:
what it writes after a reconnect, how it continues QoS 2, how it keeps to the broker's Receive
Maximum, its keepalive, its waits after a refused CONNACK, and a malformed PUBACK ending the
connection with protocol error (0x82), which the window counts as a failed attempt."""

from __future__ import annotations

import itertools
import queue
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import replace

import pytest

from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt import reasons
from mqtt_kafka_sync.mqtt.events import Acked, Acks, Connected, Disconnected, Refused
from mqtt_kafka_sync.mqtt.publisher import Command, MqttPublisher, PublisherSettings
from tests.scripted_broker import Conn, ScriptedBroker, accept, connack, puback, puback_invalid

COMMAND = Command(
    route="cmd",
    topic="p/p1/d/d1/c",
    payload=b"{}",
    qos=1,
    retain=False,
    user_properties=(("site", "a"),),
    correlation_data=b"commands/0/0",
    response_topic=None,
    expiry_seconds=None,
)


def _ack(kind: int, packet_id: int, reason: int = 0) -> bytes:
    return bytes((kind << 4, 3)) + struct.pack("!H", packet_id) + bytes((reason,))


class Client:
    """The publisher against ``broker``, its events collected; stopped when the block ends."""

    def __init__(
        self, broker: ScriptedBroker, *, keepalive: int = 60, max_inflight: int = 100, hold_acks: bool = False
    ) -> None:
        self.events: queue.SimpleQueue[object] = queue.SimpleQueue()
        self.seen: list[object] = []
        config = PublisherSettings(
            "127.0.0.1", broker.port, "relay-own", keepalive=keepalive, max_inflight=max_inflight
        )
        self.publisher = MqttPublisher(config, self.events, hold_acks=hold_acks)

    def __enter__(self) -> Client:
        self.publisher.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.publisher.stop(end_session=True)

    def wait_for(self, found: Callable[[list[object]], bool], seconds: float = 10.0) -> list[object]:
        deadline = time.monotonic() + seconds
        while not found(self.seen) and time.monotonic() < deadline:
            try:
                self.seen.append(self.events.get(timeout=0.05))
            except queue.Empty:
                continue
        assert found(self.seen), self.seen
        return self.seen

    def of(self, kind: type) -> list[object]:
        return [e for e in self.seen if isinstance(e, kind)]


def _acked(seen: list[object]) -> list[tuple[int, int]]:
    """(packet id, reason code) of every acknowledgement in ``seen``: the successes of one read come
    as one ``Acks``, a refusal as its own ``Acked``."""
    out: list[tuple[int, int]] = []
    for event in seen:
        if isinstance(event, Acks):
            out += [(mid, 0) for mid in event.mids]
        elif isinstance(event, Acked):
            out.append((event.mid, event.reason_code))
    return out


def _publishes(broker: ScriptedBroker) -> list[tuple[int, int]]:
    """(packet id, flags) of every PUBLISH the broker received."""
    return [(r.packet_id, r.flags) for r in broker.packets(p.PUBLISH)]


def test_unacknowledged_publishes_are_sent_again_with_dup_and_in_order() -> None:
    def drops_first(conn: Conn, index: int) -> None:
        accept(conn, session_present=index > 0)
        if index == 0:
            for _ in range(3):
                conn.expect(p.PUBLISH)
            return  # the connection ends with all three unacknowledged
        for _ in range(3):
            conn.send(puback(conn.expect(p.PUBLISH).packet_id))
        conn.serve(5.0)

    with ScriptedBroker(drops_first) as broker, Client(broker) as client:
        client.wait_for(lambda seen: any(isinstance(e, Connected) for e in seen))
        mids = [client.publisher.publish(replace(COMMAND, topic=f"t/{n}")) for n in range(3)]
        client.wait_for(lambda seen: len(_acked(seen)) == 3)
    sent = _publishes(broker)
    assert [mid for mid, _ in sent] == mids + mids
    assert [flags & 0x08 for _, flags in sent] == [0, 0, 0, 8, 8, 8], "DUP on the re-sends only"
    assert [r.body[2:5] for r in broker.packets(p.PUBLISH)][3:] == [b"t/0", b"t/1", b"t/2"]
    assert [mid for mid, _ in _acked(client.seen)] == mids
    assert [type(e) for e in client.seen[:3]] == [Connected, Disconnected, Connected]
    (first, second) = broker.packets(p.CONNECT)
    assert first.body[7] & 0x02 and not second.body[7] & 0x02, "Clean Start on the first connect only"


def test_qos2_continues_with_pubrel_after_a_reconnect() -> None:
    def drops_after_pubrec(conn: Conn, index: int) -> None:
        accept(conn, session_present=index > 0)
        if index == 0:
            first = conn.expect(p.PUBLISH)
            second = conn.expect(p.PUBLISH)
            conn.send(_ack(p.PUBREC, first.packet_id))
            conn.expect(p.PUBREL)
            del second
            return  # first: PUBREC'd; second: no answer
        rel = conn.expect(p.PUBREL)
        conn.send(_ack(p.PUBCOMP, rel.packet_id))
        again = conn.expect(p.PUBLISH)
        conn.send(_ack(p.PUBREC, again.packet_id))
        rel = conn.expect(p.PUBREL)
        conn.send(_ack(p.PUBCOMP, rel.packet_id))
        conn.serve(5.0)

    with ScriptedBroker(drops_after_pubrec) as broker, Client(broker) as client:
        client.wait_for(lambda seen: any(isinstance(e, Connected) for e in seen))
        first, second = (client.publisher.publish(replace(COMMAND, qos=2)) for _ in range(2))
        client.wait_for(lambda seen: len(_acked(seen)) == 2)
        assert broker.errors == []
    assert _acked(client.seen) == [(first, 0), (second, 0)]
    assert _publishes(broker) == [(first, 0x04), (second, 0x04), (second, 0x0C)]  # QoS 2, then DUP
    assert [r.packet_id for r in broker.packets(p.PUBREL)] == [first, first, second]


def test_no_more_than_the_brokers_receive_maximum_is_in_flight() -> None:
    in_flight_seen: list[int] = []

    def receive_maximum_two(conn: Conn, index: int) -> None:
        conn.expect(p.CONNECT)
        conn.send(connack(properties=[(p.PROP_RECEIVE_MAXIMUM, 2)]))
        for _ in range(3):
            batch = [conn.expect(p.PUBLISH)]
            while (extra := conn.read(0.3)) is not None and extra.kind == p.PUBLISH:
                batch.append(extra)
            in_flight_seen.append(len(batch))
            for publish in batch:
                conn.send(puback(publish.packet_id))
        conn.serve(5.0)

    with ScriptedBroker(receive_maximum_two) as broker, Client(broker, max_inflight=100) as client:
        client.wait_for(lambda seen: any(isinstance(e, Connected) for e in seen))
        (connected,) = client.of(Connected)
        assert connected.receive_maximum == 2  # type: ignore[attr-defined]
        for _ in range(6):
            client.publisher.publish(COMMAND)
        client.wait_for(lambda seen: len(_acked(seen)) == 6)
    assert in_flight_seen == [2, 2, 2]


def test_keepalive_pings_a_quiet_broker_and_gives_up_on_a_silent_one() -> None:
    pings: list[float] = []

    def silent_after_one_pong(conn: Conn, index: int) -> None:
        accept(conn)
        if index > 0:
            conn.serve(5.0)
            return
        conn.expect(p.PINGREQ)
        pings.append(time.monotonic())
        conn.send(b"\xd0\x00")
        conn.expect(p.PINGREQ)  # unanswered from now on
        pings.append(time.monotonic())
        while conn.read(5.0) is not None:
            pass

    with ScriptedBroker(silent_after_one_pong) as broker, Client(broker, keepalive=2) as client:
        start = time.monotonic()
        client.wait_for(lambda seen: any(isinstance(e, Disconnected) for e in seen), seconds=8.0)
    (lost,) = client.of(Disconnected)
    assert isinstance(lost, Disconnected) and lost.reason_code == 0x8D and "PINGRESP" in str(lost)
    assert 0.8 <= pings[0] - start <= 2.0 and 0.8 <= pings[1] - pings[0] <= 2.0, pings


def test_a_refused_connack_waits_longer_each_time_and_carries_its_failure() -> None:
    def refuses(conn: Conn, index: int) -> None:
        conn.expect(p.CONNECT)
        conn.send(connack(0x87))
        conn.read(0.5)

    with ScriptedBroker(refuses) as broker, Client(broker) as client:
        client.wait_for(lambda seen: len([e for e in seen if isinstance(e, Refused)]) >= 3, seconds=8.0)
        starts = list(broker.accepted)
    refused = [e for e in client.of(Refused) if isinstance(e, Refused)]
    assert all(e.failure is not None and e.failure.code == 0x87 for e in refused)
    assert refused[0].failure is not None and refused[0].failure.reason == "not_authorized"
    assert "not authorized (0x87)" in refused[0].reason and refused[0].client_id == "relay-own"
    waits = [e.wait for e in refused[:3]]
    assert 0.5 <= waits[0] <= 1.0 and 1.0 <= waits[1] <= 2.0 and 2.0 <= waits[2] <= 4.0, waits
    gaps = [b - a for a, b in itertools.pairwise(starts)]
    assert all(gap >= wait * 0.9 for gap, wait in zip(gaps, waits, strict=False)), (gaps, waits)


def test_a_malformed_puback_ends_the_connection_as_a_protocol_error() -> None:
    def invalid_then_good(conn: Conn, index: int) -> None:
        accept(conn, session_present=index > 0)
        publish = conn.expect(p.PUBLISH)
        if index == 0:
            conn.send(puback_invalid(publish.packet_id, publish.publish_properties))
            ended = conn.read(2.0)
            assert ended is not None and ended.kind == p.DISCONNECT and ended.body[:1] == b"\x82"
            return
        conn.send(puback(publish.packet_id))
        conn.serve(5.0)

    with ScriptedBroker(invalid_then_good) as broker, Client(broker) as client:
        client.wait_for(lambda seen: any(isinstance(e, Connected) for e in seen))
        mid = client.publisher.publish(COMMAND)
        client.wait_for(lambda seen: bool(_acked(seen)))
        assert broker.errors == []
    (lost,) = client.of(Disconnected)
    assert isinstance(lost, Disconnected) and lost.reason_code in reasons.REJECTS_WHAT_WAS_SENT
    assert str(lost) == (
        "mqtt-kafka-sync ended the connection: protocol error (0x82); mqtt-kafka-sync: received a "
        "malformed PUBACK: reason code 0x01 (granted QoS 1) is not one PUBACK may carry"
    )
    assert [m for m, _ in _acked(client.seen)] == [mid]


def test_a_publish_the_broker_cannot_take_is_refused_before_it_is_queued() -> None:
    def small_packets(conn: Conn, index: int) -> None:
        conn.expect(p.CONNECT)
        conn.send(connack(properties=[(p.PROP_MAX_PACKET_SIZE, 64)]))
        conn.serve(5.0)

    with ScriptedBroker(small_packets) as broker, Client(broker) as client:
        client.wait_for(lambda seen: any(isinstance(e, Connected) for e in seen))
        with pytest.raises(CommandError, match="the broker takes at most 64"):
            client.publisher.publish(replace(COMMAND, payload=b"x" * 100))
        with pytest.raises(CommandError, match=r"with \+ or #"):
            client.publisher.publish(replace(COMMAND, topic="a/+/b"))
    assert broker.packets(p.PUBLISH) == []


def test_publish_never_waits_for_the_socket() -> None:
    """A broker that reads nothing: publishes still return at once (the network thread holds them)."""
    hold = threading.Event()

    def reads_nothing(conn: Conn, index: int) -> None:
        accept(conn)
        hold.wait(10.0)

    with ScriptedBroker(reads_nothing) as broker, Client(broker, max_inflight=65535) as client:
        client.wait_for(lambda seen: any(isinstance(e, Connected) for e in seen))
        big = replace(COMMAND, payload=b"x" * 60_000)
        start = time.monotonic()
        for _ in range(200):  # 12 MB: far more than the socket buffers take
            client.publisher.publish(big)
        elapsed = time.monotonic() - start
        hold.set()
    assert elapsed < 5.0, elapsed


def test_held_acknowledgements_are_told_by_the_quarter_window_or_after_a_moment() -> None:
    """``hold_acks``: successes wait for a quarter of the window (2 of 8) or HOLD_S; a refusal is
    told at once, after the successes before it; nothing is held once nothing is unanswered."""
    told: list[float] = []
    acked_at: list[float] = []

    def answers(conn: Conn, index: int) -> None:
        accept(conn)
        ids = [conn.expect(p.PUBLISH).packet_id for _ in range(5)]
        conn.send(puback(ids[0]))  # alone, 4 still unanswered: held for HOLD_S
        acked_at.append(time.monotonic())
        time.sleep(0.3)
        conn.send(puback(ids[1]) + puback(ids[2], 0x87) + puback(ids[3]))  # success, refusal, success
        time.sleep(0.3)
        conn.send(puback(ids[4]))  # the last one: nothing left unanswered, told at once
        conn.serve(5.0)

    with ScriptedBroker(answers) as broker, Client(broker, max_inflight=8, hold_acks=True) as client:
        client.wait_for(lambda seen: any(isinstance(e, Connected) for e in seen))
        mids = [client.publisher.publish(COMMAND) for _ in range(5)]
        client.wait_for(lambda seen: len(_acked(seen)) == 1)
        told.append(time.monotonic())
        client.wait_for(lambda seen: len(_acked(seen)) == 5)
    assert told[0] - acked_at[0] < 0.25, "a held success waits HOLD_S, not for the next read"
    assert _acked(client.seen) == [(mids[0], 0), (mids[1], 0), (mids[2], 0x87), (mids[3], 0), (mids[4], 0)]
    batches = [e for e in client.seen if isinstance(e, Acks | Acked)]
    assert [type(e) for e in batches] == [Acks, Acks, Acked, Acks, Acks]
