"""The data SUBSCRIBE is sent again a second after its SUBACK, and after a long silence: the
client-side end of HiveMQ CE's stall (issue 17 item 7, docs/brokers.md "HiveMQ CE")."""

from __future__ import annotations

import time

import pytest

from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt import subscriptions as subscriptions_module
from mqtt_kafka_sync.mqtt.subscriber import MqttSubscriber, SubscriberSettings
from tests.scripted_broker import Conn, ScriptedBroker, accept, suback
from tests.unit.mqtt.test_broker_answers import CLIENT, FILTER, Recorder


def _retain_handling(packet: object) -> int:
    body = packet.body  # type: ignore[attr-defined]
    props_len, pos = p._read_varint(body, 2)
    _, pos = p._read_str(body, pos + props_len)
    return int(body[pos] >> 4) & 0x03


def test_the_subscribe_is_sent_again_a_second_after_its_suback_without_retained_messages() -> None:
    seen: list[tuple[float, int, list[tuple[str, int]]]] = []

    def broker_script(conn: Conn, index: int) -> None:
        accept(conn)
        start = time.monotonic()
        for _ in range(2):
            sub = conn.expect(p.SUBSCRIBE, timeout=5.0)
            seen.append((time.monotonic() - start, _retain_handling(sub), sub.subscribe_filters()))
            conn.send(suback(sub.packet_id, 1))
        conn.serve(1.0)

    with ScriptedBroker(broker_script) as broker:
        settings = SubscriberSettings("127.0.0.1", broker.port, CLIENT, (FILTER,), qos=1)
        subscriber = MqttSubscriber(settings, Recorder())
        subscriber.start()
        assert subscriber.wait_subscribed(3.0)
        time.sleep(2.0)
        subscriber.stop(timeout=5.0)
        assert broker.errors == []
        assert len(broker.accepted) == 1, "the refresh dropped the connection"
    assert [(rh, filters) for _, rh, filters in seen] == [(0, [(FILTER, 1)]), (2, [(FILTER, 1)])]
    assert 0.8 <= seen[1][0] - seen[0][0] <= 2.5


def test_a_silent_window_is_refreshed_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(subscriptions_module, "IDLE_REFRESH_S", 0.5)
    monkeypatch.setattr(subscriptions_module, "REFRESH_AFTER_S", 0.1)
    subscribes: list[float] = []

    def broker_script(conn: Conn, index: int) -> None:
        accept(conn)
        deadline = time.monotonic() + 2.5
        while time.monotonic() < deadline:
            packet = conn.read(0.2)
            if packet is not None and packet.kind == p.SUBSCRIBE:
                subscribes.append(time.monotonic())
                conn.send(suback(packet.packet_id, 1))
            elif packet is not None and packet.kind == p.PINGREQ:
                conn.send(b"\xd0\x00")

    with ScriptedBroker(broker_script) as broker:
        subscriber = MqttSubscriber(
            SubscriberSettings("127.0.0.1", broker.port, CLIENT, (FILTER,), qos=1), Recorder()
        )
        subscriber.start()
        time.sleep(2.6)
        subscriber.stop(timeout=5.0)
    # the first, the refresh after 0.1 s, then one every 0.5 s of silence: 2.5 s give 5 or 6
    assert 4 <= len(subscribes) <= 7, subscribes


def test_a_subscriber_without_data_filters_never_refreshes() -> None:
    subscribes: list[int] = []

    def broker_script(conn: Conn, index: int) -> None:
        accept(conn)
        deadline = time.monotonic() + 1.5
        while time.monotonic() < deadline:
            packet = conn.read(0.2)
            if packet is not None and packet.kind == p.SUBSCRIBE:
                subscribes.append(packet.packet_id)
                conn.send(suback(packet.packet_id, 0))

    with ScriptedBroker(broker_script) as broker:
        settings = SubscriberSettings("127.0.0.1", broker.port, CLIENT, (), qos=1, control_filters=("m/#",))
        subscriber = MqttSubscriber(settings, Recorder())
        subscriber.start()
        time.sleep(1.6)
        subscriber.stop(timeout=5.0)
    assert len(subscribes) == 1
