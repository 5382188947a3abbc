"""A replay from request to plan: the Kafka it reads, the target checked (or created), the checkpoint
resumed or a fresh plan made.

::

    session = ReplaySession(request)        # options checked, nothing connected yet
    with session:                           # the source consumer, closed at the end
        planned = session.plan(on_create)   # None: the checkpoint says the replay is complete
        ...                                 # print it, then run it (runner.py)

Nothing here prints: what the user should see comes back as :class:`Planned` or through
``on_create``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from confluent_kafka import Consumer, KafkaException

from mqtt_kafka_sync.config.model import KafkaConnection, RelayConnectorConfig
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.kafka.lag import describe_partitions
from mqtt_kafka_sync.kafka.settings import admin_client
from mqtt_kafka_sync.replay.checkpoint import Checkpoint, load_checkpoint
from mqtt_kafka_sync.replay.copier import replay_consumer
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.plan import RangeSpec, make_plan
from mqtt_kafka_sync.replay.request import ReplayRequest, default_checkpoint, spec_text
from mqtt_kafka_sync.replay.to_mqtt import describe, load_relay_connector, source_route
from mqtt_kafka_sync.throttle.controller import ControllerSettings

DESCRIBE_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class TopicCreation:
    """``--create-target``: ``topic`` made (or, in a dry run, to be made) with the source's count."""

    topic: str
    partitions: int
    source: str
    dry_run: bool


@dataclass(frozen=True)
class PlanRow:
    partition: int
    start: int
    end: int
    """Exclusive."""
    span: int
    done: int
    """Offsets of the range the checkpoint has confirmed."""


@dataclass(frozen=True)
class Planned:
    """What the replay will do, for the plan the user reads before anything is sent."""

    checkpoint: Checkpoint
    path: Path
    where: tuple[str, ...]
    """Lines about the target beyond its name (the MQTT route, broker, dead letters)."""
    settings: ControllerSettings | None
    groups: tuple[str, ...]
    watched: frozenset[str]
    """The topics whose lag the throttle reads."""
    fixed_rate: float | None
    """Records/s without a throttle group (``--rate-max`` alone)."""

    @property
    def rows(self) -> list[PlanRow]:
        nexts = self.checkpoint.next
        return [
            PlanRow(r.partition, r.start, r.end, r.span, nexts[r.partition] - r.start)
            for r in self.checkpoint.plan.ranges
        ]

    @property
    def resuming(self) -> bool:
        checkpoint = self.checkpoint
        return checkpoint.done > 0 or checkpoint.may_repeat > 0


class ReplaySession:
    """A replay's request checked against itself and against Kafka; see the module docstring."""

    def __init__(self, request: ReplayRequest) -> None:
        """Loads ``--to-mqtt``'s connector and checks the options; raises :class:`ReplayError`, or
        ``ConfigError`` for a bad connector file. Connects to nothing."""
        relay = load_relay_connector(request.to_mqtt) if request.to_mqtt is not None else None
        request.check_target_options(relay)
        self.request = request
        self.relay: RelayConnectorConfig | None = relay
        self.bootstrap: str = request.bootstrap or (
            relay.kafka.bootstrap_servers if relay else request.default_bootstrap
        )
        self.spec: RangeSpec = request.range_spec(relay)
        self.target_bootstrap: str = request.target_bootstrap or self.bootstrap
        common = {**(relay.kafka.common if relay else {}), **request.command_config}
        self.source_kafka = KafkaConnection(self.bootstrap, common=common)
        """The source's connection: ``--command-config`` over the connector's ``kafka.<property>``."""
        self.target_kafka = KafkaConnection(self.target_bootstrap, common=common)
        """A Kafka target's (into MQTT: unused, the dead letters take the connector's own)."""
        if relay is None and self.spec.source == self.spec.target and self.target_bootstrap == self.bootstrap:
            raise ReplayError("--target is --source: the replay would read its own output")
        self.settings: ControllerSettings | None = request.throttle.controller_settings()
        self.path: Path = request.checkpoint or default_checkpoint(self.spec)
        self.client_id = f"mqtt-kafka-sync-replay-{uuid.uuid4().hex[:12]}"
        self._consumer: Consumer | None = None

    @property
    def consumer(self) -> Consumer:
        """The source consumer (assigned, no group), made by :meth:`plan`."""
        if self._consumer is None:
            raise RuntimeError("plan() makes the consumer")
        return self._consumer

    def plan(self, on_create: Callable[[TopicCreation], None]) -> Planned | None:
        """The checkpoint to run from (resumed or fresh) and what to tell the user about it; None
        when the checkpoint says this replay is complete. Raises :class:`ReplayError`."""
        spec = self.spec
        self._consumer = replay_consumer(self.source_kafka, self.client_id)
        source = _partitions(self.source_kafka, spec.source)
        if not source:
            raise ReplayError(f"topic {spec.source} does not exist at {self.bootstrap}")
        target_partitions, where = self._check_target(len(source), on_create)
        checkpoint = self._checkpoint(source, target_partitions)
        if checkpoint is None:
            return None
        throttle = self.request.throttle
        return Planned(
            checkpoint=checkpoint,
            path=self.path,
            where=tuple(where),
            settings=self.settings,
            groups=throttle.groups,
            watched=throttle.watched_topics(checkpoint.plan.target),
            fixed_rate=throttle.rate_max if self.settings is None else None,
        )

    def close(self) -> None:
        if self._consumer is not None:
            self._consumer.close()
            self._consumer = None

    def __enter__(self) -> ReplaySession:
        return self

    def __exit__(
        self, _type: type[BaseException] | None, _exc: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self.close()

    # -- internals --------------------------------------------------------------------------------
    def _check_target(
        self, source_partitions: int, on_create: Callable[[TopicCreation], None]
    ) -> tuple[int, list[str]]:
        """The target's partition count (0 for MQTT) and the plan's lines about it; raises
        :class:`ReplayError` when the target cannot take the replay."""
        spec, relay, request = self.spec, self.relay, self.request
        if relay is not None:
            where = describe(relay, source_route(relay, spec.source), request.expiry_from or "written")
            if not _partitions(relay.kafka, relay.dlq_topic):
                raise ReplayError(
                    f"dead-letter topic {relay.dlq_topic} of {relay.name} does not exist at "
                    f"{relay.kafka.bootstrap_servers}: create it, records the relay would not publish "
                    "go there"
                )
            return 0, where
        target = len(_partitions(self.target_kafka, spec.target))
        if target:
            return target, []
        if not request.create_target:
            raise ReplayError(f"topic {spec.target} does not exist; create it, or pass --create-target")
        if not request.dry_run:
            ensure_topics(self.target_kafka, [spec.target], partitions=source_partitions)
        on_create(TopicCreation(spec.target, source_partitions, spec.source, request.dry_run))
        return source_partitions, []

    def _checkpoint(self, source: list[int], target: int) -> Checkpoint | None:
        spec, path = self.spec, self.path
        existing = load_checkpoint(path)
        if existing is None:
            plan = make_plan(self.consumer, spec, source_partitions=source, target_partitions=target)
            return Checkpoint.fresh(spec, plan)
        if existing.spec != spec:
            raise ReplayError(
                f"checkpoint {path} is for another replay ({spec_text(existing.spec)}); "
                "use --checkpoint with another path, or remove it to start over"
            )
        if existing.complete:
            return None
        if spec.target_kind == "kafka" and target != existing.plan.target_partitions:
            raise ReplayError(
                f"{spec.target} had {existing.plan.target_partitions} partitions when the replay started "
                f"and has {target} now: keys would land elsewhere; start over with a new checkpoint"
            )
        return existing


def _partitions(kafka: KafkaConnection, topic: str) -> list[int]:
    """The topic's partitions; empty when it does not exist (never creates it)."""
    admin = admin_client(kafka)
    try:
        return describe_partitions(admin, [topic], DESCRIBE_TIMEOUT_S).get(topic, [])
    except KafkaException as exc:
        raise ReplayError(f"cannot describe {topic} at {kafka.bootstrap_servers}: {exc.args[0]}") from exc
