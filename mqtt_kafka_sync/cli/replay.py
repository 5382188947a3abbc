"""``mqtt-kafka-sync replay`` (backfill a Kafka topic range into a topic or, through a command relay
connector's routes, into MQTT, paced by consumer lag) and ``mqtt-kafka-sync lag`` (the lag table of
consumer groups).

The main CLI calls :func:`register` with its subparsers; the chosen handler is ``args.func`` and
returns the exit code.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TextIO

from confluent_kafka import Consumer, KafkaException
from confluent_kafka.admin import AdminClient

from mqtt_kafka_sync.config.model import RelayConnectorConfig
from mqtt_kafka_sync.config.throttle import STEP_DIVISOR
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.kafka.lag import LagReader, LagSnapshot, describe_partitions
from mqtt_kafka_sync.kafka.lag_process import IsolatedLagReader
from mqtt_kafka_sync.replay.checkpoint import Checkpoint, load_checkpoint
from mqtt_kafka_sync.replay.copier import Copier, Progress, ReplayResult, replay_consumer
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.mqtt_target import STALL_TIMEOUT_S, MqttTarget, mqtt_target
from mqtt_kafka_sync.replay.plan import RangeSpec, make_plan
from mqtt_kafka_sync.replay.target import KafkaTarget, Target
from mqtt_kafka_sync.replay.to_mqtt import dead_letter_summary, describe, load_relay_connector, source_route
from mqtt_kafka_sync.throttle.controller import ControllerSettings, Decision
from mqtt_kafka_sync.throttle.lag_throttle import FixedRateThrottle, LagThrottle, ThrottleLoop, TopicTemplates
from mqtt_kafka_sync.throttle.pacing import AckThrottle

DEFAULT_BOOTSTRAP = "127.0.0.1:19092"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``replay`` and ``lag`` commands."""
    _register_replay(subparsers)
    _register_lag(subparsers)


def _bootstrap_default() -> str:
    return os.environ.get("KAFKA_BOOTSTRAP_SERVERS") or DEFAULT_BOOTSTRAP


# -- replay ---------------------------------------------------------------------------------------


def _register_replay(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    replay = subparsers.add_parser(
        "replay",
        help="copy a range of a Kafka topic into another topic or into MQTT, paced by consumer lag, "
        "resumable",
        description="Copies the records of --source in the given range, in order per partition, to the "
        "topic --target (keeping keys, values, headers and timestamps), or publishes them to MQTT "
        "through the routes of the command relay connector --to-mqtt, as the relay would (records it "
        "would not publish go to its dead-letter topic). Every copy carries "
        "replay.source=<topic>/<partition>/<offset> (a header; in MQTT a user property). Ranges are "
        "half-open: --to-offset and --to-time are not included. Without a start, a partition's range "
        "starts at its oldest record; without an end, at its end when the replay is planned. Progress "
        "goes to a checkpoint file: after Ctrl-C, a crash or kill -9, the same command resumes where "
        "the target's confirmations ended (records sent after the last checkpoint may be sent twice; "
        "the resume says how many at most). With --throttle-group, the rate follows the named groups' "
        "lag on --target or --throttle-topic (docs/replay.md).",
    )
    replay.add_argument("--source", required=True, metavar="TOPIC", help="topic to read")
    where = replay.add_mutually_exclusive_group(required=True)
    where.add_argument("--target", metavar="TOPIC", help="Kafka topic to write")
    where.add_argument(
        "--to-mqtt",
        type=Path,
        metavar="CONNECTOR_FILE",
        help="publish to MQTT through this command relay connector (.json or .properties): its route "
        "for --source, broker, credentials, QoS and dead-letter topic",
    )
    replay.add_argument(
        "--bootstrap",
        metavar="SERVERS",
        help="Kafka of --source (default: with --to-mqtt the connector's kafka.bootstrap.servers, "
        f"else $KAFKA_BOOTSTRAP_SERVERS or {DEFAULT_BOOTSTRAP})",
    )
    replay.add_argument(
        "--target-bootstrap", metavar="SERVERS", help="Kafka of --target, if not that of --source"
    )
    replay.add_argument(
        "--partition", type=int, action="append", default=[], metavar="P", help="only these (repeatable)"
    )
    replay.add_argument(
        "--from-offset",
        action="append",
        default=[],
        metavar="[P:]OFFSET",
        help="first offset, for every partition or partition P (repeatable)",
    )
    replay.add_argument(
        "--to-offset", action="append", default=[], metavar="[P:]OFFSET", help="offset to stop before"
    )
    replay.add_argument(
        "--from-time", metavar="ISO8601", help="first record at or after this time (UTC if no zone)"
    )
    replay.add_argument(
        "--to-time", metavar="ISO8601", help="stop before the first record at or after this time"
    )
    replay.add_argument(
        "--checkpoint",
        type=Path,
        metavar="PATH",
        help="checkpoint file (default ./replay-<source>-<target>.checkpoint.json, with --to-mqtt "
        "./replay-<source>-mqtt-<connector>.checkpoint.json); resumed when it exists",
    )
    replay.add_argument("--dry-run", action="store_true", help="print the plan, copy nothing, write nothing")
    replay.add_argument(
        "--create-target",
        action="store_true",
        help="create --target with the source's partition count if missing",
    )
    mqtt = replay.add_argument_group("into MQTT (with --to-mqtt)")
    mqtt.add_argument(
        "--expiry-from",
        choices=("written", "replayed"),
        help="a route's mqtt.message.expiry.seconds counts from when each record was written to Kafka, "
        "as in the relay, so older ones are dead-lettered as expired (written, the default), or from "
        "when it is published (replayed)",
    )
    mqtt.add_argument(
        "--stall-timeout",
        type=float,
        metavar="SECONDS",
        help="stop (exit 1, run again to resume) when the broker confirmed nothing for this long, e.g. "
        f"while it is unreachable (default {STALL_TIMEOUT_S:g})",
    )
    throttle = replay.add_argument_group("throttle (by consumer lag)")
    throttle.add_argument(
        "--throttle-group",
        action="append",
        default=[],
        metavar="GROUP",
        help="consumer group to watch (repeatable)",
    )
    throttle.add_argument(
        "--throttle-topic",
        action="append",
        default=[],
        metavar="TOPIC",
        help="topic whose lag counts (repeatable; default --target; with --to-mqtt name them, e.g. "
        "the topic the devices' answers are ingested into)",
    )
    throttle.add_argument(
        "--lag-high", type=int, metavar="N", help="high mark, records (required with a group)"
    )
    throttle.add_argument(
        "--lag-low", type=int, metavar="N", help="low mark, records (default: half of high)"
    )
    throttle.add_argument(
        "--rate-min", type=float, default=100.0, metavar="R", help="floor, records/s (default 100)"
    )
    throttle.add_argument(
        "--rate-max",
        type=float,
        metavar="R",
        help="cap, records/s; alone (no group): a fixed rate (default: none)",
    )
    throttle.add_argument(
        "--step-max",
        type=float,
        metavar="R",
        help=f"most the rate rises per interval, records/s (default: high / ({STEP_DIVISOR} * interval))",
    )
    throttle.add_argument(
        "--lag-interval",
        type=float,
        default=2.0,
        metavar="SECONDS",
        help="seconds between lag reads (default 2)",
    )
    throttle.add_argument(
        "--throttle-mode",
        choices=("enforce", "observe"),
        default="enforce",
        help="observe: report the rate it would set, copy unthrottled (default enforce)",
    )
    replay.add_argument(
        "--progress-interval", type=float, default=2.0, metavar="SECONDS", help="default %(default)s"
    )
    replay.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    relay = load_relay_connector(args.to_mqtt) if args.to_mqtt is not None else None
    _check_target_options(args, relay)
    bootstrap: str = args.bootstrap or (relay.kafka_bootstrap_servers if relay else _bootstrap_default())
    spec = RangeSpec(
        source=args.source,
        target=args.target if relay is None else relay.name,
        partitions=tuple(sorted(set(args.partition))),
        from_offsets=tuple(args.from_offset),
        to_offsets=tuple(args.to_offset),
        from_time=args.from_time,
        to_time=args.to_time,
        target_kind="kafka" if relay is None else "mqtt",
    )
    target_bootstrap: str = args.target_bootstrap or bootstrap
    if relay is None and spec.source == spec.target and target_bootstrap == bootstrap:
        raise ReplayError("--target is --source: the replay would read its own output")
    settings = _controller_settings(args)
    path: Path = args.checkpoint or _default_checkpoint(spec)
    client_id = f"mqtt-kafka-sync-replay-{uuid.uuid4().hex[:12]}"
    consumer = replay_consumer(bootstrap, client_id)
    try:
        source = _partitions(bootstrap, spec.source)
        if not source:
            raise ReplayError(f"topic {spec.source} does not exist at {bootstrap}")
        target_partitions, where = _check_target(args, spec, relay, len(source), target_bootstrap)
        checkpoint = _checkpoint(spec, path, consumer, source, target_partitions)
        if checkpoint is None:
            return 0
        resuming = checkpoint.done > 0 or checkpoint.may_repeat > 0
        _print_plan(checkpoint, path, settings, args, where, resuming=resuming)
        if args.dry_run:
            return 0
        stop = threading.Event()
        target = _open_target(
            args, relay, checkpoint, target_bootstrap=target_bootstrap, client_id=client_id, stop=stop
        )
        try:
            result = _run(
                args,
                checkpoint=checkpoint,
                path=path,
                consumer=consumer,
                target=target,
                settings=settings,
                stop=stop,
                lag_bootstrap=target_bootstrap,
            )
        except ReplayError:
            if note := _dead_letter_note(target):
                print(note.removeprefix("; "), file=sys.stderr)
            raise
        finally:
            target.close()
    finally:
        consumer.close()
    note = _dead_letter_note(target)
    if not result.complete:
        print(
            f"stopped at {result.done:,} of {result.total:,}{note}; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    label = checkpoint.plan.target_label
    print(f"replayed {result.total:,} offsets of {spec.source} into {label} ({result.sent:,} sent{note})")
    return 0


def _check_target_options(args: argparse.Namespace, relay: RelayConnectorConfig | None) -> None:
    """Options that only make sense with the other kind of target."""
    if relay is None:
        for option in ("expiry_from", "stall_timeout"):
            if getattr(args, option) is not None:
                raise ReplayError(f"--{option.replace('_', '-')} is for --to-mqtt")
        return
    if args.target_bootstrap is not None:
        raise ReplayError(
            "--target-bootstrap is for --target; with --to-mqtt dead letters go to the connector's "
            "kafka.bootstrap.servers"
        )
    if args.create_target:
        raise ReplayError("--create-target is for --target (a Kafka topic)")
    if args.throttle_group and not args.throttle_topic:
        raise ReplayError(
            "with --to-mqtt, --throttle-group needs --throttle-topic: the topics whose lag the replay "
            "drives, e.g. the one the devices' answers are ingested into"
        )
    if args.stall_timeout is not None and args.stall_timeout <= 0:
        raise ReplayError("--stall-timeout must be above 0 seconds")


def _default_checkpoint(spec: RangeSpec) -> Path:
    if spec.target_kind == "mqtt":
        return Path(f"replay-{spec.source}-mqtt-{spec.target}.checkpoint.json")
    return Path(f"replay-{spec.source}-{spec.target}.checkpoint.json")


def _dead_letter_note(target: Target) -> str:
    """``; N dead-lettered to <topic> (...)`` after an MQTT replay that dead-lettered records."""
    if isinstance(target, MqttTarget) and target.stats.dead_lettered:
        return "; " + dead_letter_summary(target.stats, target.dead_letter_topic)
    return ""


def _controller_settings(args: argparse.Namespace) -> ControllerSettings | None:
    if not args.throttle_group:
        for option in ("lag_high", "lag_low", "step_max"):
            if getattr(args, option) is not None:
                raise ReplayError(f"--{option.replace('_', '-')} needs --throttle-group")
        if args.throttle_topic:
            raise ReplayError("--throttle-topic needs --throttle-group")
        return None
    if args.lag_high is None:
        raise ReplayError("--throttle-group needs --lag-high, the lag (records) to stay under")
    high: int = args.lag_high
    interval: float = args.lag_interval
    try:
        return ControllerSettings(
            lag_high=high,
            lag_low=high // 2 if args.lag_low is None else args.lag_low,
            rate_min=args.rate_min,
            rate_max=args.rate_max if args.rate_max is not None else 1_000_000.0,
            step=args.step_max if args.step_max is not None else max(1.0, high / (STEP_DIVISOR * interval)),
            interval=interval,
            mode=args.throttle_mode,
        )
    except ValueError as exc:
        raise ReplayError(f"throttle settings: {exc}") from None


def _check_target(
    args: argparse.Namespace,
    spec: RangeSpec,
    relay: RelayConnectorConfig | None,
    source_partitions: int,
    target_bootstrap: str,
) -> tuple[int, list[str]]:
    """The target's partition count (0 for MQTT) and the plan's lines about it; raises
    :class:`ReplayError` when the target cannot take the replay."""
    if relay is not None:
        where = describe(relay, source_route(relay, spec.source), args.expiry_from or "written")
        if not _partitions(relay.kafka_bootstrap_servers, relay.dlq_topic):
            raise ReplayError(
                f"dead-letter topic {relay.dlq_topic} of {relay.name} does not exist at "
                f"{relay.kafka_bootstrap_servers}: create it, records the relay would not publish go there"
            )
        return 0, where
    target = len(_partitions(target_bootstrap, spec.target))
    if target:
        return target, []
    if not args.create_target:
        raise ReplayError(f"topic {spec.target} does not exist; create it, or pass --create-target")
    if args.dry_run:
        print(f"would create {spec.target} with {source_partitions} partitions, as {spec.source} has")
    else:
        ensure_topics(target_bootstrap, [spec.target], partitions=source_partitions)
        print(f"created {spec.target} with {source_partitions} partitions, as {spec.source} has")
    return source_partitions, []


def _open_target(
    args: argparse.Namespace,
    relay: RelayConnectorConfig | None,
    checkpoint: Checkpoint,
    *,
    target_bootstrap: str,
    client_id: str,
    stop: threading.Event,
) -> KafkaTarget | MqttTarget:
    """The target, ready to send (for MQTT: once the broker accepted the connection)."""
    plan = checkpoint.plan
    if relay is None:
        return KafkaTarget(
            target_bootstrap, plan.target, same_partitions=plan.same_partitions, client_id=client_id
        )
    target = mqtt_target(
        relay,
        plan.source,
        expiry_from=args.expiry_from or "written",
        stall_timeout=args.stall_timeout or STALL_TIMEOUT_S,
        stop=stop,
    )
    try:
        target.connect(relay.mqtt_connect_timeout_seconds)
    except BaseException:
        target.close()
        raise
    return target


def _checkpoint(
    spec: RangeSpec, path: Path, consumer: Consumer, source: list[int], target: int
) -> Checkpoint | None:
    """The checkpoint to run from (resumed or fresh); None when there is nothing to do."""
    existing = load_checkpoint(path)
    if existing is None:
        plan = make_plan(consumer, spec, source_partitions=source, target_partitions=target)
        return Checkpoint.fresh(spec, plan)
    if existing.spec != spec:
        raise ReplayError(
            f"checkpoint {path} is for another replay ({_spec_text(existing.spec)}); "
            "use --checkpoint with another path, or remove it to start over"
        )
    if existing.complete:
        print(f"checkpoint {path}: this replay is already complete; nothing to do")
        return None
    if spec.target_kind == "kafka" and target != existing.plan.target_partitions:
        raise ReplayError(
            f"{spec.target} had {existing.plan.target_partitions} partitions when the replay started "
            f"and has {target} now: keys would land elsewhere; start over with a new checkpoint"
        )
    return existing


def _partitions(bootstrap: str, topic: str) -> list[int]:
    """The topic's partitions; empty when it does not exist (never creates it)."""
    admin = AdminClient({"bootstrap.servers": bootstrap}, logger=logging.getLogger("librdkafka"))
    try:
        return describe_partitions(admin, [topic], 10.0).get(topic, [])
    except KafkaException as exc:
        raise ReplayError(f"cannot describe {topic} at {bootstrap}: {exc.args[0]}") from exc


def _run(
    args: argparse.Namespace,
    *,
    checkpoint: Checkpoint,
    path: Path,
    consumer: Consumer,
    target: Target,
    settings: ControllerSettings | None,
    stop: threading.Event,
    lag_bootstrap: str,
) -> ReplayResult:
    throttle: AckThrottle | None = None
    loop: ThrottleLoop | None = None
    line = ProgressLine(sys.stderr)
    if settings is not None:
        lag_throttle = LagThrottle(settings)
        reader = IsolatedLagReader(
            lag_bootstrap, args.throttle_group, topics=TopicTemplates(_watched_topics(args, checkpoint))
        )
        loop = ThrottleLoop(
            lag_throttle, reader.read_lag, settings.interval, on_decision=line.decision, close=reader.close
        )
        throttle = lag_throttle
    elif args.rate_max is not None:
        throttle = FixedRateThrottle(args.rate_max)
    copier = Copier(
        checkpoint,
        path,
        consumer,
        target,
        throttle=throttle,
        stop=stop,
        on_progress=line.progress,
        progress_interval=args.progress_interval,
        final_wait=(args.stall_timeout or STALL_TIMEOUT_S) if isinstance(target, MqttTarget) else 30.0,
    )
    with _stop_on_signals(stop):
        if loop is not None:
            loop.start()
        try:
            return copier.run()
        finally:
            if loop is not None:
                loop.stop()


def _watched_topics(args: argparse.Namespace, checkpoint: Checkpoint) -> frozenset[str]:
    """The topics whose lag the throttle reads: ``--throttle-topic``, else the target topic."""
    return frozenset(args.throttle_topic or [checkpoint.plan.target])


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """SIGINT and SIGTERM stop the copy cleanly: confirmed records are checkpointed, then exit."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


class ProgressLine:
    """``done/total (pct)  rate  ETA  [limit, lag]``: rewritten in place on a terminal, else one line
    per report."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._tty = out.isatty()
        self._decision: Decision | None = None

    def decision(self, decision: Decision) -> None:
        self._decision = decision

    def progress(self, progress: Progress) -> None:
        pct = 100.0 * progress.done / progress.total if progress.total else 100.0
        eta = progress.eta_seconds
        text = (
            f"replay {progress.done:,}/{progress.total:,} ({pct:.1f}%)  {progress.rate:,.0f} rec/s  "
            f"ETA {_duration(eta) if eta is not None else '?'}"
        )
        if self._decision is not None:
            lag = "unknown" if self._decision.lag is None else f"{self._decision.lag:,}"
            text += f"  limit {self._decision.rate:,.0f}/s  lag {lag}"
        if self._tty:
            self._out.write("\r" + text + ("\n" if progress.finished else ""))
        else:
            self._out.write(text + "\n")
        self._out.flush()


def _duration(seconds: float) -> str:
    whole = round(seconds)
    return f"{whole // 3600}:{whole // 60 % 60:02d}:{whole % 60:02d}"


def _print_plan(
    checkpoint: Checkpoint,
    path: Path,
    settings: ControllerSettings | None,
    args: argparse.Namespace,
    where: list[str],
    *,
    resuming: bool,
) -> None:
    """``where``: lines about the target beyond its name (the MQTT route, broker, dead letters)."""
    plan = checkpoint.plan
    if plan.target_kind == "mqtt":
        print(f"replay {plan.source} -> MQTT through relay connector {plan.target} ({args.to_mqtt})")
    elif plan.same_partitions:
        print(
            f"replay {plan.source} -> {plan.target}: same partition numbers ({plan.target_partitions} "
            "partitions)"
        )
    else:
        print(
            f"replay {plan.source} -> {plan.target}: partition by key, murmur2 as Java ({len(plan.ranges)} "
            f"source -> {plan.target_partitions} target partitions; records without a key go to any "
            "partition)"
        )
    for text in where:
        print(text)
    print(f"  {'partition':>9}  {'from':>12}  {'to (excl.)':>12}  {'offsets':>12}  {'done':>12}")
    for r in plan.ranges:
        done = checkpoint.next[r.partition] - r.start
        print(f"  {r.partition:>9}  {r.start:>12,}  {r.end:>12,}  {r.span:>12,}  {done:>12,}")
    print(f"  {'total':>9}  {'':>12}  {'':>12}  {plan.total:>12,}  {checkpoint.done:>12,}")
    for note in plan.notes:
        print(f"  note: {note}")
    print(
        "  offsets count records; on compacted or transactional topics some offsets hold none, "
        "so fewer records may be sent"
        if plan.total
        else "  nothing to copy"
    )
    if settings is not None:
        watched = ", ".join(sorted(_watched_topics(args, checkpoint)))
        print(
            f"  throttle ({settings.mode}): lag of {', '.join(args.throttle_group)} on {watched} between "
            f"{settings.lag_low:,} and {settings.lag_high:,}; {settings.rate_min:,.0f} to "
            f"{settings.rate_max:,.0f} records/s, rising {settings.step:,.0f}/s per {settings.interval:g}s"
        )
    elif args.rate_max is not None:
        print(f"  fixed rate: {args.rate_max:,.0f} records/s")
    print(f"  checkpoint: {path}")
    if resuming:
        print(
            f"  resuming: {checkpoint.done:,} done; up to {checkpoint.may_repeat:,} records sent after "
            "the last checkpoint may be sent again"
        )
    sys.stdout.flush()


def _spec_text(spec: RangeSpec) -> str:
    target = spec.target if spec.target_kind == "kafka" else f"MQTT via {spec.target}"
    parts = [f"{spec.source} -> {target}"]
    for name, value in (
        ("partitions", ",".join(map(str, spec.partitions))),
        ("from-offset", " ".join(spec.from_offsets)),
        ("to-offset", " ".join(spec.to_offsets)),
        ("from-time", spec.from_time or ""),
        ("to-time", spec.to_time or ""),
    ):
        if value:
            parts.append(f"--{name} {value}")
    return " ".join(parts)


# -- lag ------------------------------------------------------------------------------------------


def _register_lag(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    lag = subparsers.add_parser(
        "lag",
        help="print the lag of consumer groups: per partition, in records and in time",
        description="For each group: every partition of the topics it has committed offsets on or is "
        "assigned, with "
        "the log end offset, the committed offset, the lag (end - committed) and the age of the "
        "oldest unconsumed record (read from that record's timestamp). '-' where there is no "
        "commit. Lag is as fresh as the group's last commit.",
    )
    lag.add_argument("--group", action="append", required=True, metavar="GROUP", help="repeatable")
    lag.add_argument(
        "--bootstrap",
        default=_bootstrap_default(),
        help="Kafka (default $KAFKA_BOOTSTRAP_SERVERS or %(default)s)",
    )
    lag.add_argument("--topic", action="append", default=[], metavar="TOPIC", help="only these topics")
    lag.add_argument("--no-time-lag", action="store_true", help="skip reading record timestamps")
    lag.set_defaults(func=cmd_lag)


def cmd_lag(args: argparse.Namespace) -> int:
    topics = set(args.topic)
    reader = LagReader(
        args.bootstrap,
        args.group,
        topics=(lambda t: t in topics) if topics else None,
        track_uncommitted=False,
    )
    try:
        snapshot = reader.read(time_lag=not args.no_time_lag)
    finally:
        reader.close()
    print(format_lag_table(snapshot))
    return 0 if any(g.partitions for g in snapshot.groups) else 1


def format_lag_table(snapshot: LagSnapshot) -> str:
    header = ("GROUP", "TOPIC", "PARTITION", "END", "COMMITTED", "LAG", "TIME LAG")
    rows: list[tuple[str, ...]] = []
    empty: list[str] = []
    for group in snapshot.groups:
        if not group.partitions:
            empty.append(group.group)
            continue
        rows.extend(
            (
                s.group,
                s.topic,
                str(s.partition),
                f"{s.end:,}",
                "-" if s.committed is None else f"{s.committed:,}",
                "-" if s.lag is None else f"{s.lag:,}",
                _age(s.time_lag_s),
            )
            for s in group.partitions
        )
        rows.append((group.group, "(total)", "", "", "", f"{group.total:,}", _age(group.max_time_lag_s)))
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    right = {2, 3, 4, 5, 6}

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    out = [line(header), *(line(r) for r in rows)] if rows else []
    out += [f"{g}: no committed offsets (unknown group, or nothing committed yet)" for g in empty]
    return "\n".join(out)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    return _duration(seconds)
