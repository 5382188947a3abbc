"""Sharded mode in the telemetry: the shards a task owns reach its block, the gauge, /readyz and the
status file's ``shards``; other connectors' blocks and answers are as before."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

from mqtt_kafka_sync.config.model import ShardsConfig
from mqtt_kafka_sync.telemetry import catalog as c
from mqtt_kafka_sync.telemetry.layout import Layout
from mqtt_kafka_sync.telemetry.probe import ingest_probe
from mqtt_kafka_sync.telemetry.registry import PipelineRegistry
from mqtt_kafka_sync.telemetry.service import TelemetryService
from mqtt_kafka_sync.telemetry.settings import TelemetrySettings
from mqtt_kafka_sync.telemetry.shared import TaskMetrics
from tests.unit.telemetry.telemetry_fakes import source_config
from tests.unit.telemetry.test_telemetry import _sink, _Subscriber, _Task

FILTERS = ("plants/p0/#", "plants/p1/#", "plants/p2/#")


def _write(owned: tuple[int, ...]) -> TaskMetrics:
    """A sharded task's block, written by its probe while the task owns ``owned``."""
    config = replace(source_config(), shards=ShardsConfig(FILTERS, ("a", "b", "c"), "coordination", "owners"))
    metrics = TaskMetrics(config, 0)
    worker = SimpleNamespace(task=_Task(_sink(), subscriber=_Subscriber()), throttle=None)
    ingest_probe(config, worker, metrics.block, PipelineRegistry(), owned_shards=lambda: owned).write()
    return metrics


def test_owned_shards_reach_the_gauge_and_readyz() -> None:
    metrics = _write((0, 2))
    snap = metrics.snapshot(alive=True, restarts=0)
    assert snap.value(c.SHARDS_OWNED) == 2
    assert snap.owned_shards() == ["plants/p0/#", "plants/p2/#"]
    service = TelemetryService(TelemetrySettings(port=0), lambda: [metrics.snapshot(alive=True, restarts=0)])
    ready, text = service.readiness()
    assert ready, text
    assert text == "ready\nsrc/task-0 owns shards: plants/p0/#, plants/p2/#\n"


def test_a_standby_owns_none_and_is_ready() -> None:
    metrics = _write(())
    assert metrics.snapshot(alive=True, restarts=0).value(c.SHARDS_OWNED) == 0
    service = TelemetryService(TelemetrySettings(port=0), lambda: [metrics.snapshot(alive=True, restarts=0)])
    assert service.readiness() == (True, "ready\nsrc/task-0 owns shards: none\n")


def test_shared_mode_blocks_have_no_shard_slots() -> None:
    layout = Layout(source_config())
    assert layout.shard_filters == ()
    assert not list(layout.of(c.SHARDS_OWNED))
