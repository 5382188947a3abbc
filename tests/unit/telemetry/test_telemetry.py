"""Metrics without brokers: hot-path counters, the task probe, the shared block, the exporter, OTLP."""

from __future__ import annotations

import functools
import gzip
import logging
import math
import os
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from mqtt_kafka_sync.cli.main import build_parser, telemetry_settings
from mqtt_kafka_sync.config.model import RouteConfig
from mqtt_kafka_sync.ingest.acks import AckTracker
from mqtt_kafka_sync.ingest.pipeline import IngestPipeline
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from mqtt_kafka_sync.kafka.lag import LagSample
from mqtt_kafka_sync.kafka.lag_hub import LagHub, LagWatch
from mqtt_kafka_sync.kafka.lag_topics import SubscribedTopics
from mqtt_kafka_sync.logs import RepeatFilter, TransientFilter
from mqtt_kafka_sync.mqtt.failures import Failures
from mqtt_kafka_sync.mqtt.packets import Publish
from mqtt_kafka_sync.telemetry import catalog as c
from mqtt_kafka_sync.telemetry.counters import Buckets
from mqtt_kafka_sync.telemetry.exceptions import TelemetryError
from mqtt_kafka_sync.telemetry.exporter import Exporter
from mqtt_kafka_sync.telemetry.http import MetricsServer
from mqtt_kafka_sync.telemetry.layout import Layout
from mqtt_kafka_sync.telemetry.probe import ingest_probe
from mqtt_kafka_sync.telemetry.registry import PipelineRegistry
from mqtt_kafka_sync.telemetry.service import TelemetryService
from mqtt_kafka_sync.telemetry.settings import TelemetrySettings
from mqtt_kafka_sync.telemetry.shared import TaskMetrics, TaskSnapshot
from tests.unit.ingest.test_pipeline import FakeSink, _Rec
from tests.unit.telemetry.telemetry_fakes import relay_config, source_config

TELEMETRY = "plants/{plant}/devices/{device}/telemetry"


@pytest.fixture
def tracked() -> PipelineRegistry:
    return PipelineRegistry()


def _msg(topic: str, payload: bytes, packet_id: int) -> Publish:
    return Publish(topic, payload, 1, False, False, packet_id, [])


def _pipeline(
    sink: FakeSink, name: str = "src", telemetry: PipelineRegistry | None = None
) -> tuple[IngestPipeline, AckTracker]:
    tracker = AckTracker(lambda acks: None)
    routes = [RouteConfig("t", TELEMETRY, "telemetry", "{plant}.{device}", "json")]
    pipeline = IngestPipeline(
        name,
        IngestRoutes(routes),
        sink=sink,
        tracker=tracker,
        dlq_topic="dlq",
        on_stuck=lambda r: None,
        telemetry=telemetry,
    )
    return pipeline, tracker


# -- hot path ----------------------------------------------------------------------------------
def test_buckets_put_a_value_on_a_bound_into_that_bound() -> None:
    buckets = Buckets((0.1, 1.0))
    for value in (0.05, 0.1, 0.5, 1.0, 7.0):
        buckets.observe(value)
    assert buckets.counts == [2, 2, 1]  # le=0.1, le=1, +Inf
    assert buckets.count == 5
    assert buckets.sum == pytest.approx(8.65)


def test_pipeline_counts_routes_dead_letters_and_latencies() -> None:
    sink = FakeSink()
    pipeline, tracker = _pipeline(sink)
    pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b'{"v": 1}', 1), 1)
    pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b"not json", 2), 1)
    pipeline.on_message(_msg("elsewhere/x", b"abc", 3), 1)
    stats = pipeline.stats
    assert stats.dlq_by_reason == {}  # counted when the dead-letter topic confirms, not when sent
    pipeline.on_tick()
    routes = stats.routes
    assert (routes["t"].received, routes["t"].received_bytes) == (2, 8 + 8)
    assert (routes["t"].delivered, routes["t"].delivered_bytes) == (1, len(b'{"v":1}'))
    assert (routes[c.UNROUTED].received, routes[c.UNROUTED].received_bytes) == (1, 3)
    assert stats.dlq_by_reason == {"bad-payload": 1, "no-route": 1}
    assert stats.delivery_latency.count == 1  # the data record; dead letters are not timed
    assert stats.delivery_latency.sum == pytest.approx(0.001)  # the fake's Message.latency()
    assert tracker.latency.count == 3  # every QoS 1 message, dead-lettered or not


class _Retriable:
    def retriable(self) -> bool:
        return True

    def code(self) -> int:
        return 1

    def str(self) -> str:
        return "Broker: Not enough in-sync replicas"


class RetryOnceSink(FakeSink):
    """The first record fails with a retriable error; the pipeline produces it again."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    def produce(self, topic: str, value: bytes, key: bytes | None, headers: Any, on_delivery: Any) -> None:
        if self.failed:
            super().produce(topic, value, key, headers, on_delivery)
            return
        self.failed = True
        self._due.append(lambda: on_delivery(_Retriable(), _Rec(topic, value)))


def test_a_retried_record_is_received_once() -> None:
    sink = RetryOnceSink()
    pipeline, tracker = _pipeline(sink)
    pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b"{}", 1), 1)
    pipeline.on_tick()  # the retriable failure: produced again
    pipeline.on_tick()  # delivered
    counters = pipeline.stats.routes["t"]
    assert (counters.received, counters.delivered, pipeline.stats.retried) == (1, 1, 1)
    assert tracker.latency.count == 1


# -- the task probe and the shared block ----------------------------------------------------------
@dataclass
class _Subscriber:
    connected: bool = True
    subscribed: bool = True
    reconnects: int = 0
    redeliveries: int = 0
    loop_turned_at: float = field(default_factory=time.monotonic)
    failures: Failures = field(default_factory=Failures)

    def wait_connected(self, timeout: float) -> bool:
        return self.connected


@dataclass
class _Task:
    sink: Any
    subscriber: _Subscriber = field(default_factory=_Subscriber)
    pacer: Any = None


@dataclass
class _Throttle:
    rate: float = 250.0
    last_lag: int | None = 1234
    mode: str = "observe"
    last_decision: Any = field(default_factory=lambda: SimpleNamespace(action="hold"))


class _ObservedSink(FakeSink):
    """The fake sink with what telemetry reads of a KafkaSink (views.SinkView)."""

    kafka_up = True
    errors = 2
    kafka_refusal: str | None = None
    kafka_refusals: dict[str, int] = {}  # noqa: RUF012  # read only


def _sink() -> FakeSink:
    return _ObservedSink()


def test_probe_writes_every_pipeline_of_the_connector_into_the_block(tracked: PipelineRegistry) -> None:
    config = source_config(throttled=True)
    sink = _sink()
    main, _ = _pipeline(sink, config.name, tracked)
    adopted, _ = _pipeline(sink, config.name, tracked)  # an adopted session of a dead peer: counted too
    _pipeline(sink, "another-connector", tracked)
    for pipeline, packet_id in ((main, 1), (adopted, 2)):
        pipeline.on_message(_msg("plants/p1/devices/d1/telemetry", b"{}", packet_id), 1)
    main.on_tick()
    worker = SimpleNamespace(task=_Task(sink), throttle=_Throttle())
    metrics = TaskMetrics(config, 0)
    ingest_probe(config, worker, metrics.block, tracked).write()
    snap = metrics.snapshot(alive=True, restarts=0)
    assert snap.value(c.RECEIVED_MESSAGES, route="t") == 2
    assert snap.value(c.DELIVERED_MESSAGES, route="t") == 2
    assert snap.value(c.ERRORS, reason="kafka-client") == 2
    assert snap.value(c.DEAD_LETTERS, reason="no-route") == 0  # exists at zero
    assert snap.value(c.THROTTLE_RATE) == 250.0
    assert snap.value(c.THROTTLE_DECISION, action="hold") == 1.0
    assert snap.value(c.THROTTLE_DECISION, action="decrease") == 0.0
    offset = snap.layout.offset(c.END_TO_END_LATENCY)
    assert sum(snap.values[offset : offset + len(c.LATENCY_BOUNDS) + 1]) == 2
    assert snap.ready


def test_a_throttle_the_worker_does_not_expose_leaves_its_gauges_empty(
    tracked: PipelineRegistry, caplog: pytest.LogCaptureFixture
) -> None:
    config = source_config(throttled=True)
    metrics = TaskMetrics(config, 0)
    worker = SimpleNamespace(task=_Task(_sink()), throttle=None)
    probe = ingest_probe(config, worker, metrics.block, tracked)
    with caplog.at_level(logging.WARNING):
        probe.write()
        probe.write()
    assert math.isnan(metrics.snapshot(True, 0).value(c.THROTTLE_RATE))
    assert sum("exposes no throttle" in r.getMessage() for r in caplog.records) == 1


def test_restarted_task_keeps_counters_and_loses_gauges() -> None:
    config = source_config()
    metrics = TaskMetrics(config, 0)
    layout = metrics.layout
    first = [0.0] * layout.size
    first[layout.offset(c.RECEIVED_MESSAGES, route="t")] = 10
    first[layout.offset(c.MQTT_CONNECTED)] = 1
    metrics.block[:] = first
    metrics.retire()  # the process died
    second = [0.0] * layout.size
    second[layout.offset(c.RECEIVED_MESSAGES, route="t")] = 3
    metrics.block[:] = second
    snap = metrics.snapshot(alive=True, restarts=1)
    assert snap.value(c.RECEIVED_MESSAGES, route="t") == 13
    assert snap.value(c.MQTT_CONNECTED) == 0


def test_readiness_names_what_is_missing() -> None:
    layout = Layout(relay_config())
    values = [0.0] * layout.size
    values[Layout.HEARTBEAT] = time.monotonic()
    values[layout.offset(c.MQTT_CONNECTED)] = 1
    snap = TaskSnapshot("relay/task-0", {}, layout, values, alive=True, restarts=0)
    assert snap.problems() == ["not in its consumer group", "no Kafka broker connection"]
    assert TaskSnapshot("relay/task-0", {}, layout, values, alive=False, restarts=0).problems() == [
        "process not running"
    ]
    values[Layout.HEARTBEAT] = time.monotonic() - 60
    assert snap.problems() == ["not reporting (starting, or stuck)"]


def test_a_wedged_network_loop_fails_readiness_then_liveness() -> None:
    """The task process and its stats loop run, but the thread that does the work has stopped
    turning: /readyz says so after 10 s, /healthz after --liveness-timeout."""
    config = source_config()
    metrics = TaskMetrics(config, 0)
    subscriber = _Subscriber()
    worker = SimpleNamespace(task=_Task(_sink(), subscriber=subscriber), throttle=None)
    probe = ingest_probe(config, worker, metrics.block, PipelineRegistry())
    probe.write()
    service = TelemetryService(
        TelemetrySettings(port=0, liveness_timeout_s=30.0), lambda: [metrics.snapshot(alive=True, restarts=0)]
    )
    assert metrics.snapshot(True, 0).ready
    assert service.liveness() == (True, "ok\n")
    subscriber.loop_turned_at = time.monotonic() - 12
    probe.write()
    snap = metrics.snapshot(True, 0)
    assert snap.value(c.NETWORK_LOOP_AGE) >= 12
    assert snap.problems() == ["network loop has not turned for 12s"]
    assert service.liveness()[0] is True  # not ready, but not yet for a restart
    subscriber.loop_turned_at = time.monotonic() - 45
    probe.write()
    alive, text = service.liveness()
    assert not alive and "src/task-0: network loop has not turned for 45s" in text


# -- the exporter ------------------------------------------------------------------------------
class FakeSource:
    """Snapshots of one throttled ingest task and one relay task, and one lag point."""

    def __init__(self) -> None:
        self.tasks = [self._task(source_config(throttled=True)), self._task(relay_config())]

    @staticmethod
    def _task(config: Any) -> TaskSnapshot:
        layout = Layout(config)
        values = [0.0] * layout.size
        values[Layout.HEARTBEAT] = time.monotonic()
        for series in layout.series:
            if series.metric.kind != "histogram":
                values[series.offset] = 1.0
        if not layout.relay:
            offset = layout.offset(c.KAFKA_DELIVERY_LATENCY)
            values[offset + 2] = 3  # three records in the le=0.0025 bucket
            values[offset + len(c.LATENCY_BOUNDS)] = 1  # one above 60 s
            values[offset + len(c.LATENCY_BOUNDS) + 1] = 61.0  # their sum
            values[layout.offset(c.THROTTLE_LAG)] = math.nan
        return TaskSnapshot(
            f"{config.name}/task-0", {"connector": config.name, "task": "0"}, layout, values, True, 0
        )

    def snapshots(self) -> list[TaskSnapshot]:
        return self.tasks

    def lag_points(self) -> list[LagSample]:
        return [LagSample("commands-relay", "commands", 2, 40, 23, 17, 4.5)]


def scrape(source: Any) -> dict[str, Any]:
    exporter = Exporter(source, TelemetrySettings(port=0))
    try:
        return {f.name: f for f in text_string_to_metric_families(exporter.scrape().decode())}
    finally:
        exporter.shutdown()


def test_exposition_has_histograms_zero_counters_and_no_nan_gauges() -> None:
    families = scrape(FakeSource())
    latency = families["mqtt_kafka_sync_kafka_delivery_latency_seconds"]
    samples = {(s.name, s.labels.get("le")): s.value for s in latency.samples}
    assert samples[("mqtt_kafka_sync_kafka_delivery_latency_seconds_bucket", "0.0025")] == 3
    assert samples[("mqtt_kafka_sync_kafka_delivery_latency_seconds_bucket", "60.0")] == 3
    assert samples[("mqtt_kafka_sync_kafka_delivery_latency_seconds_bucket", "+Inf")] == 4
    assert samples[("mqtt_kafka_sync_kafka_delivery_latency_seconds_count", None)] == 4
    assert samples[("mqtt_kafka_sync_kafka_delivery_latency_seconds_sum", None)] == 61.0
    lag = families["mqtt_kafka_sync_consumer_lag"].samples[0]
    assert lag.labels == {"group": "commands-relay", "topic": "commands", "partition": "2"}
    assert lag.value == 17
    assert "mqtt_kafka_sync_throttle_lag" not in families  # NaN: no value, no series
    reasons = {s.labels["reason"] for s in families["mqtt_kafka_sync_dead_letters"].samples}
    assert set(c.RELAY_DLQ_REASONS) | set(c.INGEST_DLQ_REASONS) <= reasons


class _Collector(BaseHTTPRequestHandler):
    bodies: list[bytes] = []  # noqa: RUF012 - shared with the test on purpose

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        _Collector.bodies.append(body)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


def test_otlp_export_carries_the_bridged_histograms() -> None:
    server = HTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Collector.bodies.clear()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}/v1/metrics"
    exporter = Exporter(FakeSource(), TelemetrySettings(port=0, otlp_endpoint=endpoint, otlp_interval_s=3600))
    try:
        assert exporter.provider.force_flush(10_000)
    finally:
        exporter.shutdown()
        server.shutdown()
        server.server_close()
    metrics = {}
    for body in _Collector.bodies:
        request = ExportMetricsServiceRequest()
        request.ParseFromString(body)
        metrics.update(
            {m.name: m for rm in request.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
        )
    histogram = metrics["mqtt_kafka_sync_kafka_delivery_latency"].histogram
    assert histogram.aggregation_temporality == 2  # cumulative
    point = histogram.data_points[0]
    assert (point.count, point.sum, list(point.explicit_bounds)) == (4, 61.0, list(c.LATENCY_BOUNDS))
    assert metrics["mqtt_kafka_sync_received_messages"].sum.is_monotonic


def test_a_taken_port_is_refused_with_the_option_to_change() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TelemetryError, match="--metrics-port"):
            MetricsServer("127.0.0.1", port, lambda: b"", lambda: (True, "ready\n"))


def test_a_crashed_lag_reader_process_is_started_again(caplog: pytest.LogCaptureFixture) -> None:
    # The child dies at once, as librdkafka's admin client can make it (exit code 3 here).
    relay = relay_config()
    watch = LagWatch(
        relay.kafka.bootstrap_servers, relay.kafka_group_id, SubscribedTopics(["commands"]), 1.0, 1.0
    )
    poller = LagHub([watch], functools.partial(os._exit, 3))
    poller.RESTART_S = 0.1
    with caplog.at_level(logging.WARNING):
        poller.start()
        deadline = time.monotonic() + 60
        while sum("exited (code 3)" in r.getMessage() for r in caplog.records) < 2:
            assert time.monotonic() < deadline, "the lag reader was not started again"
            time.sleep(0.1)
        poller.stop()
    assert poller.samples() == []


# -- settings and logs ---------------------------------------------------------------------------
def test_settings_come_from_the_options_and_the_standard_variables() -> None:
    args = build_parser().parse_args(["run", "x.json"])
    assert telemetry_settings(args, {}) == TelemetrySettings()
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318/", "OTEL_METRIC_EXPORT_INTERVAL": "5000"}
    settings = telemetry_settings(args, env)
    assert settings is not None
    assert (settings.otlp_endpoint, settings.otlp_interval_s) == ("http://collector:4318/v1/metrics", 5.0)
    off = build_parser().parse_args(["run", "x.json", "--metrics-port", "0"])
    assert telemetry_settings(off, {}) is None
    only_otlp = telemetry_settings(off, {"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://c:4318/m"})
    assert only_otlp is not None
    assert (only_otlp.port, only_otlp.otlp_endpoint) == (0, "http://c:4318/m")


def test_repeat_filter_lets_one_line_of_a_kind_through_per_interval() -> None:
    now = [0.0]
    repeat = RepeatFilter(interval=60.0, clock=lambda: now[0])

    def passes(message: str) -> bool:
        return repeat.filter(logging.LogRecord("librdkafka", logging.ERROR, "", 0, message, (), None))

    assert passes("Connect to ipv4#127.0.0.1:9092 failed (after 0ms in state CONNECT)")
    assert not passes("Connect to ipv4#127.0.0.1:9092 failed (after 1ms in state CONNECT)")
    assert passes("a different failure")
    now[0] = 61.0
    record = logging.LogRecord(
        "librdkafka",
        logging.ERROR,
        "",
        0,
        "Connect to ipv4#127.0.0.1:9092 failed (after 2ms in state CONNECT)",
        (),
        None,
    )
    assert repeat.filter(record)
    assert record.getMessage().endswith("(1 similar lines held back)")


def test_librdkafka_start_up_transients_are_info_not_warnings(caplog: pytest.LogCaptureFixture) -> None:
    transient = TransientFilter()
    getpid = (
        "GETPID [p#producer-1] [thrd:main]: Failed to acquire idempotence PID from broker 127.0.0.1:9092/1: "
        "Broker: Coordinator load in progress: retrying"
    )

    def record(level: int, message: str) -> logging.LogRecord:
        return logging.LogRecord("librdkafka", level, "", 0, message, (), None)

    caplog.set_level(logging.WARNING)
    quiet = record(logging.WARNING, getpid)
    assert not transient.filter(quiet)  # at the default level: not shown
    caplog.set_level(logging.INFO)
    shown = record(logging.WARNING, getpid)
    assert transient.filter(shown) and shown.levelname == "INFO"
    caplog.set_level(logging.WARNING)
    down = record(logging.WARNING, "all brokers down (1/1 brokers are down)")
    assert transient.filter(down) and down.levelno == logging.WARNING
    failed = record(logging.ERROR, "Connect to ipv4#127.0.0.1:9092 failed: Coordinator load in progress")
    assert transient.filter(failed) and failed.levelno == logging.ERROR  # errors stay errors


def test_librdkafka_s_refusal_lines_are_warnings_beside_the_one_error_of_the_episode() -> None:
    transient = TransientFilter()

    def record(message: str) -> logging.LogRecord:
        return logging.LogRecord("librdkafka", logging.ERROR, "", 0, message, (), None)

    dropped = record(
        "FAIL [rdkafka#consumer-2] [thrd:GroupCoordinator]: GroupCoordinator: SASL authentication error: "
        "SaslAuthenticateRequest failed: Local: Broker transport failure (after 0ms in state DOWN)"
    )
    assert transient.filter(dropped) and dropped.levelname == "WARNING"
    refused = record(
        "FAIL [rdkafka#producer-1] [thrd:sasl_ssl://127.0.0.1:29093/bootstrap]: SASL authentication error: "
        "Authentication failed during authentication due to invalid credentials "
        "with SASL mechanism SCRAM-SHA-512"
    )
    assert transient.filter(refused) and refused.levelname == "WARNING"
    down = record(
        "FAIL [rdkafka#producer-1] [thrd:127.0.0.1:9092/bootstrap]: Connect to ipv4#127.0.0.1:9092 failed"
    )
    assert transient.filter(down) and down.levelname == "ERROR"
