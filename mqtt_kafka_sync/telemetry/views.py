"""What telemetry reads of the data paths, as structural types: telemetry imports none of them.

The ingest and relay workers (and their pipelines and trackers) have these attributes; the task
process hands its worker to the probe, which reads them twice a second (``probe.py``), and each
pipeline registers its counters in the task's registry (``registry.py``). Anything with the same
attributes will do, which is also what the tests use.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Protocol

from mqtt_kafka_sync.telemetry.counters import Buckets, RouteCounters


class IngestCounters(Protocol):
    """``ingest.pipeline.IngestStats``."""

    @property
    def routes(self) -> Mapping[str, RouteCounters]: ...
    @property
    def dlq_by_reason(self) -> Mapping[str, int]: ...
    @property
    def retried(self) -> int: ...
    @property
    def dead_letter_refused(self) -> int: ...
    @property
    def delivery_latency(self) -> Buckets: ...


class AckView(Protocol):
    """``ingest.acks.AckTracker``."""

    @property
    def latency(self) -> Buckets: ...
    @property
    def in_flight(self) -> int: ...


class FailureView(Protocol):
    """``mqtt.failures.Failure``: the refusal in force."""

    @property
    def reason(self) -> str: ...
    @property
    def code(self) -> int: ...


class FailuresView(Protocol):
    """``mqtt.failures.Failures``."""

    @property
    def current(self) -> FailureView | None: ...
    @property
    def counts(self) -> Mapping[str, int]: ...


class KafkaRefusalsView(Protocol):
    """``kafka.connection_state.ConnectionReports``: whether Kafka refuses the client."""

    @property
    def kafka_refusal(self) -> str | None: ...
    @property
    def kafka_refusals(self) -> Mapping[str, int]: ...


class SubscriberView(Protocol):
    """``mqtt.subscriber.MqttSubscriber``."""

    @property
    def failures(self) -> FailuresView: ...
    @property
    def subscribed(self) -> bool: ...
    @property
    def reconnects(self) -> int: ...
    @property
    def redeliveries(self) -> int: ...
    @property
    def loop_turned_at(self) -> float: ...
    def wait_connected(self, timeout: float) -> bool: ...


class SinkView(KafkaRefusalsView, Protocol):
    """``kafka.producer.KafkaSink``."""

    @property
    def errors(self) -> int: ...
    @property
    def kafka_up(self) -> bool: ...


class PacerView(Protocol):
    """``throttle.pacing.PacedAcks``."""

    @property
    def held(self) -> int: ...


class DecisionView(Protocol):
    """``throttle.controller.Decision``."""

    @property
    def action(self) -> str: ...


class ThrottleView(Protocol):
    """``throttle.lag_throttle.LagThrottle``: an ingest worker with ``throttle.lag.groups`` has one."""

    @property
    def rate(self) -> float: ...
    @property
    def last_lag(self) -> int | None: ...
    @property
    def mode(self) -> str: ...
    @property
    def last_decision(self) -> DecisionView | None: ...


class IngestTaskView(Protocol):
    @property
    def subscriber(self) -> SubscriberView: ...
    @property
    def sink(self) -> SinkView: ...
    @property
    def pacer(self) -> PacerView | None: ...


class IngestWorkerView(Protocol):
    """``ingest.worker.IngestWorker``."""

    @property
    def task(self) -> IngestTaskView: ...
    @property
    def throttle(self) -> ThrottleView | None: ...


class RelayCounters(Protocol):
    """``relay.stats.RelayStats``."""

    @property
    def routes(self) -> Mapping[str, RouteCounters]: ...
    @property
    def dlq_by_reason(self) -> Mapping[str, int]: ...
    @property
    def dead_letter_refused(self) -> int: ...
    @property
    def republished(self) -> int: ...
    @property
    def stalls(self) -> int: ...
    @property
    def outages(self) -> int: ...


class OffsetsView(Protocol):
    @property
    def unfinished(self) -> Callable[[], int]: ...


class RelayTaskView(KafkaRefusalsView, Protocol):
    @property
    def stats(self) -> RelayCounters: ...
    @property
    def mqtt_failures(self) -> FailuresView: ...
    @property
    def kafka_errors(self) -> int: ...
    @property
    def mqtt_connected(self) -> bool: ...
    @property
    def in_group(self) -> bool: ...
    @property
    def kafka_connected(self) -> bool: ...
    @property
    def buffered(self) -> int: ...
    @property
    def tracker(self) -> OffsetsView: ...


class RelayWorkerView(Protocol):
    """``relay.worker.RelayWorker``."""

    @property
    def task(self) -> RelayTaskView: ...
    @property
    def loop_turned_at(self) -> float: ...
