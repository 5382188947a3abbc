"""The ingest subscriber against a scripted misbehaving broker (tests/scripted_broker.py): every
answer is read and said in words, every retry backs off, nothing loops hot.

Each test runs the real :class:`MqttSubscriber` over loopback TCP for a few seconds and counts what
the broker saw in that window: connections, SUBSCRIBEs, and the log lines the operator gets.
"""

from __future__ import annotations

import logging
import threading
import time

import pytest

from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt import reasons
from mqtt_kafka_sync.mqtt.subscriber import Backoff, MqttSubscriber, SubscriberSettings
from tests.scripted_broker import Conn, Script, ScriptedBroker, accept, connack_v311, publish, suback

FILTER = "$share/bridge/plants/+/devices/+/telemetry"
CLIENT = "answers-0"
LOGGER = "mqtt_kafka_sync.mqtt.subscriber"


class Recorder:
    """A message handler that never acknowledges (as when Kafka is slow): the broker redelivers."""

    def __init__(self) -> None:
        self.messages: list[p.Publish] = []
        self.lost: list[str] = []

    def on_connected(self, generation: int, session_present: bool) -> None:
        pass

    def on_message(self, message: p.Publish, generation: int) -> None:
        self.messages.append(message)

    def on_disconnected(self, generation: int, reason: str) -> None:
        self.lost.append(reason)

    def on_tick(self) -> float | None:
        return None


def _run(broker: ScriptedBroker, seconds: float, qos: int = 1) -> tuple[MqttSubscriber, Recorder]:
    """Run a subscriber against ``broker`` for ``seconds``; returns it stopped."""
    settings = SubscriberSettings(
        host="127.0.0.1", port=broker.port, client_id=CLIENT, filters=(FILTER,), qos=qos, connect_timeout=2.0
    )
    handler = Recorder()
    subscriber = MqttSubscriber(settings, handler)
    subscriber.start()
    time.sleep(seconds)
    subscriber.stop(timeout=5.0)
    assert broker.errors == []
    return subscriber, handler


def _lines(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == LOGGER and r.levelno == level]


@pytest.fixture(autouse=True)
def _debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger=LOGGER)


# -- 1. CONNACK -----------------------------------------------------------------------------------
def test_a_311_connack_is_a_refusal_said_in_words_once_and_backed_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def moquette(conn: Conn, index: int) -> None:
        conn.expect(p.CONNECT)
        conn.send(connack_v311(1))
        conn.read(5.0)  # until the client hangs up

    turned_while_waiting: list[float] = []
    with ScriptedBroker(moquette) as broker:
        settings = SubscriberSettings(
            host="127.0.0.1", port=broker.port, client_id=CLIENT, filters=(FILTER,), qos=1
        )
        subscriber = MqttSubscriber(settings, Recorder())
        subscriber.start()
        for _ in range(8):  # 4 s: the thread turns while it backs off
            time.sleep(0.5)
            turned_while_waiting.append(time.monotonic() - subscriber.loop_turned_at)
        refusal = subscriber.last_refusal
        connected = subscriber.wait_connected(0)
        subscriber.stop(timeout=5.0)
        attempts = len(broker.accepted)

    # Code 1 cannot succeed later (not retriable): the next attempt waits the 60 s cap (jitter down
    # to half) from the start, where it was ~30,000 attempts in 30 s once. Retriable refusals back
    # off from 1 s (test_a_refused_connect_is_said_once_and_backed_off_from_one_second).
    assert attempts == 1, attempts
    assert not connected
    words = "this broker speaks MQTT 3.1.1 only; the ingest needs MQTT 5"
    errors = _lines(caplog, logging.ERROR)
    assert len(errors) == 1, errors
    assert "an operator must change" in errors[0]
    assert words in errors[0] and f"127.0.0.1:{broker.port}" in errors[0] and CLIENT in errors[0]
    assert "unacceptable protocol version (CONNACK return code 1)" in errors[0]
    assert refusal is not None and words in refusal
    assert not any("connected" in line for line in _lines(caplog, logging.INFO))
    assert max(turned_while_waiting) < 1.5, turned_while_waiting


# -- 2. reconnects back off, redeliveries counted -------------------------------------------------
def test_a_broker_dropping_us_after_each_redelivery_is_reconnected_to_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def drops_after_redelivery(conn: Conn, index: int) -> None:
        accept(conn, session_present=index > 0)
        sub = conn.expect(p.SUBSCRIBE)
        conn.send(suback(sub.packet_id, 1))
        for packet_id in (1, 2, 3):  # the session's unacknowledged messages, again and again
            conn.send(
                publish("plants/p1/devices/d1/telemetry", b"x", qos=1, packet_id=packet_id, dup=index > 0)
            )
        if index == 0:
            conn.serve(0.3)

    with ScriptedBroker(drops_after_redelivery) as broker:
        subscriber, handler = _run(broker, 4.0)
        connections = len(broker.accepted)

    # Waits 0.2, 0.4, 0.8, 1.6, 3.2 s (jitter down to half): at most 7 connections in 4 s, where
    # the worker reconnected as fast as the broker answered before (134,699 records of 2,000).
    assert 3 <= connections <= 7, connections
    assert len(handler.messages) == 3 * connections
    assert subscriber.redeliveries == 3 * (connections - 1)
    assert subscriber.reconnects == connections
    lost = [line for line in _lines(caplog, logging.WARNING) if "lost" in line]
    assert lost and all("reconnecting in" in line for line in lost)


def test_redeliveries_without_dup_are_counted_by_packet_id() -> None:
    def no_dup_flag(conn: Conn, index: int) -> None:
        accept(conn, session_present=index > 0)
        sub = conn.expect(p.SUBSCRIBE)
        conn.send(suback(sub.packet_id, 1))
        conn.send(publish("t/1", b"x", qos=1, packet_id=7))
        if index == 0:
            conn.serve(0.2)
        else:
            conn.send(publish("t/2", b"y", qos=1, packet_id=8))  # new: not a redelivery
            conn.serve(5.0)

    with ScriptedBroker(no_dup_flag) as broker:
        subscriber, handler = _run(broker, 1.5)
    assert len(broker.accepted) == 2
    assert [m.packet_id for m in handler.messages] == [7, 7, 8]
    assert subscriber.redeliveries == 1


def test_backoff_grows_to_its_cap_and_starts_small_again_after_reset() -> None:
    backoff = Backoff(rand=lambda: 1.0)
    assert [backoff.next(1.0, 60.0) for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    backoff.reset()
    assert backoff.next(0.2, 10.0) == 0.2
    low = Backoff(rand=lambda: 0.0)
    assert low.next(1.0, 60.0) == 0.5


# -- 3. SUBACK ------------------------------------------------------------------------------------
def test_suback_0x91_is_answered_with_a_subscribe_under_another_id(caplog: pytest.LogCaptureFixture) -> None:
    ids: list[int] = []

    def mochi(conn: Conn, index: int) -> None:
        accept(conn, session_present=True)
        first = conn.expect(p.SUBSCRIBE)
        ids.append(first.packet_id)
        conn.send(suback(first.packet_id, 0x91))  # the resumed session holds this id
        second = conn.expect(p.SUBSCRIBE)
        ids.append(second.packet_id)
        assert second.subscribe_filters() == [(FILTER, 1)]
        conn.send(suback(second.packet_id, 1))
        conn.serve(5.0)

    subscribed = threading.Event()
    with ScriptedBroker(mochi) as broker:
        settings = SubscriberSettings(
            host="127.0.0.1", port=broker.port, client_id=CLIENT, filters=(FILTER,), qos=1
        )
        subscriber = MqttSubscriber(settings, Recorder())
        subscriber.start()
        if subscriber.wait_subscribed(3.0):
            subscribed.set()
        refusal = subscriber.last_refusal
        subscriber.stop(timeout=5.0)
        assert broker.errors == []
        connections = len(broker.accepted)

    assert subscribed.is_set()
    assert len(ids) == 2 and ids[0] != ids[1]
    assert connections == 1, "a refused SUBACK dropped the connection"
    assert refusal is None
    warnings = [line for line in _lines(caplog, logging.WARNING) if "SUBACK" in line]
    assert len(warnings) == 1
    assert FILTER in warnings[0] and "packet identifier in use (0x91)" in warnings[0]
    assert f"packet id {ids[1]}" in warnings[0]
    assert _lines(caplog, logging.ERROR) == []


def _refusing_every_subscribe(code: int) -> Script:
    """A broker that accepts the connection and answers every SUBSCRIBE with ``code``."""

    def refuse(conn: Conn, index: int) -> None:
        accept(conn)
        while True:
            sub = conn.expect(p.SUBSCRIBE, timeout=10.0)
            conn.send(suback(sub.packet_id, code))

    return refuse


def test_suback_0x87_logs_one_error_and_subscribes_again_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ScriptedBroker(_refusing_every_subscribe(0x87)) as broker:
        settings = SubscriberSettings(
            host="127.0.0.1", port=broker.port, client_id=CLIENT, filters=(FILTER,), qos=1
        )
        subscriber = MqttSubscriber(settings, Recorder())
        subscriber.start()
        time.sleep(4.0)
        subscribed, refusal = subscriber.subscribed, subscriber.last_refusal
        turned_ago = time.monotonic() - subscriber.loop_turned_at
        subscriber.stop(timeout=5.0)
        subscribes = len(broker.packets(p.SUBSCRIBE))
        connections = len(broker.accepted)

    assert not subscribed
    assert connections == 1
    # SUBSCRIBE again after 1 s, 2 s, 4 s (jitter down to half): at most 4 in 4 s, never a hot loop.
    assert 2 <= subscribes <= 4, subscribes
    errors = _lines(caplog, logging.ERROR)
    assert len(errors) == 1, errors
    for part in (f"127.0.0.1:{broker.port}", CLIENT, FILTER, "not authorized (0x87)", "subscribing again in"):
        assert part in errors[0]
    assert refusal is not None and FILTER in refusal and "not authorized" in refusal
    assert turned_ago < 1.5


def test_a_refusal_that_cannot_succeed_later_is_retried_only_at_the_cap(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with ScriptedBroker(_refusing_every_subscribe(0x9E)) as broker:
        subscriber, _ = _run(broker, 2.5)
        subscribes = len(broker.packets(p.SUBSCRIBE))
    assert subscribes == 1  # the next one after 30 to 60 s: the broker's config may change
    errors = _lines(caplog, logging.ERROR)
    assert len(errors) == 1 and "shared subscriptions not supported (0x9E)" in errors[0]
    assert "an operator must change" in errors[0] and "subscribing again in" in errors[0]
    wait = float(errors[0].split("subscribing again in ")[1].split("s")[0])
    assert 30.0 <= wait <= 60.0, errors[0]
    assert subscriber.last_refusal is not None and "shared subscriptions" in subscriber.last_refusal


# -- 6. granted QoS -------------------------------------------------------------------------------
def test_qos_1_granted_for_qos_2_is_logged_once_with_what_it_means(caplog: pytest.LogCaptureFixture) -> None:
    def hivemq(conn: Conn, index: int) -> None:
        accept(conn, session_present=index > 0)
        sub = conn.expect(p.SUBSCRIBE)
        conn.send(suback(sub.packet_id, 1))  # QoS 1 where 2 was asked
        conn.serve(0.3 if index == 0 else 5.0)

    with ScriptedBroker(hivemq) as broker:
        _run(broker, 1.5, qos=2)
        assert len(broker.accepted) == 2, "the test wants the grant twice"
    warnings = [line for line in _lines(caplog, logging.WARNING) if "granted" in line]
    assert len(warnings) == 1, warnings
    assert "granted QoS 1" in warnings[0] and "QoS 2 was asked" in warnings[0] and FILTER in warnings[0]
    assert "duplicates are possible" in warnings[0]


# -- the table ------------------------------------------------------------------------------------
SPEC_CODES = [
    0x00, 0x01, 0x02, 0x04, 0x10, 0x11, 0x18, 0x19, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87,
    0x88, 0x89, 0x8A, 0x8B, 0x8C, 0x8D, 0x8E, 0x8F, 0x90, 0x91, 0x92, 0x93, 0x94, 0x95, 0x96, 0x97,
    0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
]  # fmt: skip
"""Every reason code of MQTT 5.0, section 2.4, table 2-6."""


@pytest.mark.parametrize("code", SPEC_CODES)
def test_every_mqtt5_reason_code_decodes_to_words(code: int) -> None:
    reason = reasons.lookup(code)
    assert reason.name and "does not define" not in reason.name
    text = reasons.describe(code)
    assert text.startswith(reason.name) and f"0x{code:02X}" in text
    assert reasons.is_refusal(code) == (code >= 0x80)


@pytest.mark.parametrize(
    ("code", "words"),
    [
        (1, "unacceptable protocol version (CONNACK return code 1): this broker speaks MQTT 3.1.1 only"),
        (2, "identifier rejected"),
        (3, "server unavailable"),
        (4, "bad user name or password"),
        (5, "not authorized (CONNACK return code 5)"),
    ],
)
def test_every_311_connack_return_code_decodes_to_words_and_is_a_refusal(code: int, words: str) -> None:
    assert words in reasons.describe(code, reasons.CONNACK)
    assert reasons.is_refusal(code, reasons.CONNACK)


@pytest.mark.parametrize(
    ("code", "packet", "name"),
    [
        (0x00, reasons.CONNACK, "connection accepted"),
        (0x00, reasons.SUBACK, "granted QoS 0"),
        (0x00, reasons.DISCONNECT, "normal disconnection"),
        (0x00, reasons.PUBACK, "success"),
        (0x87, reasons.CONNACK, "not authorized"),
        (0x05, None, "a reason code MQTT 5 does not define"),
    ],
)
def test_names_depend_on_the_packet_where_the_spec_says_so(code: int, packet: int | None, name: str) -> None:
    assert reasons.lookup(code, packet).name == name
    assert not reasons.is_refusal(0, reasons.CONNACK)
