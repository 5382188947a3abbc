"""A refusal in force reaches /readyz in words through the task's shared block, and the refused
attempts reach ``connection_failures``; Kafka's refusals come from librdkafka's error callback."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError

from mqtt_kafka_sync.kafka.connection_state import ConnectionState
from mqtt_kafka_sync.mqtt.failures import Failure
from mqtt_kafka_sync.telemetry import catalog as c
from mqtt_kafka_sync.telemetry.probe import ingest_probe
from mqtt_kafka_sync.telemetry.registry import PipelineRegistry
from mqtt_kafka_sync.telemetry.service import TelemetryService
from mqtt_kafka_sync.telemetry.settings import TelemetrySettings
from mqtt_kafka_sync.telemetry.shared import TaskMetrics
from tests.unit.telemetry.telemetry_fakes import source_config
from tests.unit.telemetry.test_telemetry import _sink, _Subscriber, _Task


def _readiness(subscriber: _Subscriber, sink: object) -> tuple[TaskMetrics, tuple[bool, str]]:
    config = source_config()
    metrics = TaskMetrics(config, 0)
    worker = SimpleNamespace(task=_Task(sink, subscriber=subscriber), throttle=None)
    ingest_probe(config, worker, metrics.block, PipelineRegistry()).write()
    service = TelemetryService(TelemetrySettings(port=0), lambda: [metrics.snapshot(alive=True, restarts=0)])
    return metrics, service.readiness()


def test_readyz_says_which_broker_refused_and_why_and_the_metric_counts_it() -> None:
    subscriber = _Subscriber(connected=False, subscribed=False)
    refusal = Failure("not_authorized", 0x87, "broker 127.0.0.1:1883 refused the connection: ...")
    for _ in range(3):
        subscriber.failures.failed(refusal)
    sink = _sink()
    sink.kafka_refusal = "auth"  # type: ignore[attr-defined]
    sink.kafka_refusals = {"auth": 5}  # type: ignore[attr-defined]
    metrics, (ready, text) = _readiness(subscriber, sink)
    assert not ready
    assert "mqtt: broker 127.0.0.1:1883 refused the connection: not authorized (0x87)" in text
    assert "kafka: authentication failed (bootstrap servers 127.0.0.1:9092)" in text
    assert "MQTT not connected" not in text and "no Kafka broker connection" not in text
    snap = metrics.snapshot(alive=True, restarts=0)
    assert snap.value(c.CONNECTION_FAILURES, side="mqtt", reason="not_authorized") == 3
    assert snap.value(c.CONNECTION_FAILURES, side="kafka", reason="auth") == 5
    assert snap.value(c.CONNECTION_FAILURES, side="mqtt", reason="tls") == 0  # exists at zero


@pytest.mark.parametrize(
    ("failure", "words"),
    [
        (Failure("subscribe_refused", 0x87, ""), "refused a subscription: not authorized (0x87)"),
        (Failure("tls", 0, ""), "mqtt: the TLS handshake with broker 127.0.0.1:1883 failed"),
        (Failure("refused", 0, ""), "mqtt: broker 127.0.0.1:1883 refused the connection\n"),
    ],
)
def test_every_mqtt_refusal_has_words(failure: Failure, words: str) -> None:
    subscriber = _Subscriber(subscribed=False)
    subscriber.failures.failed(failure)
    _, (ready, text) = _readiness(subscriber, _sink())
    assert not ready and words in text


def test_a_kafka_authentication_failure_is_one_error_line_without_the_password(
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = {
        "bootstrap.servers": "127.0.0.1:9093",
        "sasl.username": "bridge",
        "sasl.password": "hunter2-secret",
    }
    state = ConnectionState("kafka producer relay-0", settings)
    text = "SASL authentication error: bad credentials for bridge (password hunter2-secret)"
    with caplog.at_level(logging.DEBUG):
        for _ in range(20):
            assert state.on_error(KafkaError(KafkaError._AUTHENTICATION, text))
        assert not state.on_error(KafkaError(KafkaError._TRANSPORT, "Disconnected"))
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1, errors
    for part in ("kafka producer relay-0", "127.0.0.1:9093", "authentication failed", "bridge"):
        assert part in errors[0]
    assert "hunter2" not in caplog.text
    assert state.refusal == "auth" and state.refusals["auth"] == 20 and not state.up
    state.on_stats('{"brokers": {"b1": {"state": "UP"}}}')
    assert state.refusal is None and state.up
    state.on_error(KafkaError(KafkaError._SSL, "SSL handshake failed"))
    assert state.refusal == "tls" and len([r for r in caplog.records if r.levelno >= logging.ERROR]) == 2
