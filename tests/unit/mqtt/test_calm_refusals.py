"""Issue 13 item 4: a broker that refuses us gets one ERROR line, a slow capped retry, a reason for
/readyz and a count for the metrics; the retry loops read the error's ``retriable``.

The subscriber runs against tests/scripted_broker.py over loopback for a few seconds; the schedule
over 30 s is checked on :class:`Reconnects` alone, with the waits added up instead of slept.
"""

from __future__ import annotations

import itertools
import logging
import queue
import ssl
import time

import pytest

from mqtt_kafka_sync.errors import MqttConnectError
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt.connection import BrokerRefused, Reconnects
from mqtt_kafka_sync.mqtt.events import Refused
from mqtt_kafka_sync.mqtt.failures import SUMMARY_EVERY, Failure
from mqtt_kafka_sync.mqtt.publisher import MqttPublisher, PublisherSettings
from mqtt_kafka_sync.mqtt.subscriber import MqttSubscriber, SubscriberSettings
from tests.scripted_broker import Conn, ScriptedBroker, accept, connack, suback
from tests.unit.mqtt.test_broker_answers import CLIENT, FILTER, LOGGER, Recorder, _lines
from tests.unit.relay.test_relay_task import Harness

SETTINGS = SubscriberSettings(host="127.0.0.1", port=1883, client_id=CLIENT, filters=(FILTER,), qos=1)


class TlsRefused(MqttConnectError):
    """What the TLS work raises when a handshake fails: an MqttConnectError with its own reason."""

    reason = "tls"
    retriable = False


@pytest.fixture(autouse=True)
def _debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)


def _attempts_in(reconnects: Reconnects, exc: MqttConnectError | OSError, seconds: float) -> list[float]:
    """The waits of every attempt that starts within ``seconds`` (the first at 0)."""
    waits: list[float] = []
    elapsed = 0.0
    while elapsed < seconds:
        wait, _ = reconnects.failed(exc)
        waits.append(wait)
        elapsed += wait
    return waits


def test_a_refused_connect_is_backed_off_from_one_to_sixty_seconds(caplog: pytest.LogCaptureFixture) -> None:
    reconnects = Reconnects(SETTINGS)
    waits = _attempts_in(reconnects, BrokerRefused(0x86), 30.0)
    assert len(waits) <= 6, waits  # 0.5-1, 1-2, 2-4, 4-8, 8-16, 16-32 s: never a hot loop
    assert 0.5 <= waits[0] <= 1.0 and all(b > a / 2 for a, b in itertools.pairwise(waits))
    waits += _attempts_in(reconnects, BrokerRefused(0x86), 3600.0)
    assert max(waits) <= 60.0
    errors = _lines(caplog, logging.ERROR)
    assert len(errors) == 1, errors
    assert (
        "bad user name or password (0x86)" in errors[0]
        and "127.0.0.1:1883" in errors[0]
        and CLIENT in errors[0]
    )
    summaries = [line for line in _lines(caplog, logging.WARNING) if "refused" in line]
    assert len(summaries) == len(waits) // SUMMARY_EVERY
    assert reconnects.failures.current is not None
    assert reconnects.failures.current.reason == "bad_credentials"
    assert reconnects.failures.counts["bad_credentials"] == len(waits)
    reconnects.connected()
    assert reconnects.failures.current is None
    reconnects.failed(BrokerRefused(0x86))
    assert len(_lines(caplog, logging.ERROR)) == 2, "a new episode is said again"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (TlsRefused("TLS handshake failed: certificate verify failed: unknown CA"), "tls"),
        (ssl.SSLError(1, "[SSL: TLSV1_ALERT_UNKNOWN_CA] tlsv1 alert unknown ca"), "tls"),
        (BrokerRefused(0x84), "refused"),
    ],
)
def test_any_connect_error_that_cannot_clear_waits_the_cap_from_the_start(
    caplog: pytest.LogCaptureFixture, exc: MqttConnectError | OSError, reason: str
) -> None:
    reconnects = Reconnects(SETTINGS)
    waits = _attempts_in(reconnects, exc, 30.0)
    assert len(waits) == 1 and 30.0 <= waits[0] <= 60.0, waits
    (error,) = _lines(caplog, logging.ERROR)
    assert "an operator must change" in error and "127.0.0.1:1883" in error and CLIENT in error
    assert reconnects.failures.current is not None and reconnects.failures.current.reason == reason


def test_an_unreachable_broker_is_not_a_refusal(caplog: pytest.LogCaptureFixture) -> None:
    reconnects = Reconnects(SETTINGS)
    wait, refusal = reconnects.failed(ConnectionRefusedError(111, "Connection refused"))
    assert refusal is None and wait <= 0.2 and reconnects.failures.current is None
    assert _lines(caplog, logging.ERROR) == []


def test_the_subscriber_refused_0x87_counts_its_attempts_and_says_it_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def refuses(conn: Conn, index: int) -> None:
        conn.expect(p.CONNECT)
        conn.send(connack(0x87))
        conn.read(5.0)

    with ScriptedBroker(refuses) as broker:
        settings = SubscriberSettings(
            host="127.0.0.1", port=broker.port, client_id=CLIENT, filters=(FILTER,), qos=1
        )
        subscriber = MqttSubscriber(settings, Recorder())
        subscriber.start()
        time.sleep(4.0)
        failure, counts = subscriber.failures.current, dict(subscriber.failures.counts)
        subscriber.stop(timeout=5.0)
        attempts = len(broker.accepted)

    assert 2 <= attempts <= 4, attempts  # 1 s, 2 s, 4 s with jitter down to half
    assert counts == {"not_authorized": attempts}
    assert failure is not None and failure.code == 0x87 and "not authorized (0x87)" in failure.words
    errors = _lines(caplog, logging.ERROR)
    assert len(errors) == 1, errors
    assert f"127.0.0.1:{broker.port}" in errors[0] and CLIENT in errors[0] and "trying again in" in errors[0]
    assert not any(r.exc_info for r in caplog.records), "no stack trace"


def test_a_suback_refusal_is_in_force_until_the_filter_is_granted() -> None:
    def acl_fixed_later(conn: Conn, index: int) -> None:
        accept(conn)
        sub = conn.expect(p.SUBSCRIBE)
        conn.send(suback(sub.packet_id, 0x87))
        sub = conn.expect(p.SUBSCRIBE, timeout=5.0)
        conn.send(suback(sub.packet_id, 1))
        conn.serve(5.0)

    with ScriptedBroker(acl_fixed_later) as broker:
        settings = SubscriberSettings(
            host="127.0.0.1", port=broker.port, client_id=CLIENT, filters=(FILTER,), qos=1
        )
        subscriber = MqttSubscriber(settings, Recorder())
        subscriber.start()
        deadline = time.monotonic() + 2.0
        while subscriber.failures.current is None and time.monotonic() < deadline:
            time.sleep(0.02)
        refused = subscriber.failures.current
        granted = subscriber.wait_subscribed(3.0)
        after = subscriber.failures.current
        subscriber.stop(timeout=5.0)
        connections = len(broker.accepted)
    assert refused is not None and refused.reason == "subscribe_refused" and refused.code == 0x87
    assert granted and after is None and connections == 1


def test_paho_waits_longer_after_each_refused_connack(caplog: pytest.LogCaptureFixture) -> None:
    def refuses(conn: Conn, index: int) -> None:
        conn.expect(p.CONNECT)
        conn.send(connack(0x86))
        conn.read(0.5)

    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    with ScriptedBroker(refuses) as broker:
        publisher = MqttPublisher(PublisherSettings("127.0.0.1", broker.port, "relay-refused"), events)
        publisher.start()
        time.sleep(4.0)
        publisher.stop(end_session=False)
        attempts = len(broker.accepted)
    refused = []
    while not events.empty():
        event = events.get()
        if isinstance(event, Refused):
            refused.append(event)
    assert 2 <= attempts <= 4, attempts
    said = f"broker 127.0.0.1:{broker.port} refused the connection: bad user name or password (0x86)"
    assert refused and all(e.failure is not None and e.failure.code == 0x86 for e in refused)
    assert all(e.failure is not None and e.failure.words.startswith(said) for e in refused), refused
    assert [e.wait for e in refused] == sorted(e.wait for e in refused)


def test_the_relay_logs_a_refused_connect_once_and_a_session_ends_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    harness = Harness()
    said = "broker 127.0.0.1:8883 refused the connection: not authorized (0x87)"
    failure = Failure("not_authorized", 0x87, said, True)
    for wait in (1.0, 2.0, 4.0):
        harness.events.put(Refused("not authorized (0x87)", "relay-0", wait, failure))
    harness.task.step()
    failures = harness.task.mqtt_failures
    assert failures.current is not None and failures.current.reason == "not_authorized"
    assert failures.counts["not_authorized"] == 3
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == ["mqtt relay-0: broker 127.0.0.1:8883 refused the connection: not authorized (0x87); "
                      "trying again in 1.0s (attempt 1)"]  # fmt: skip
    harness.connect()
    harness.task.step()
    assert failures.current is None
    assert not [r for r in caplog.records if r.name == LOGGER and r.exc_info]
