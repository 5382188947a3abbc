"""``mqtt-kafka-sync replay`` (backfill a Kafka topic range, paced by consumer lag) and
``mqtt-kafka-sync lag`` (the lag table of consumer groups).

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

from mqtt_kafka_sync.config.throttle import STEP_DIVISOR
from mqtt_kafka_sync.ingest.pacing import AckThrottle
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.replay.checkpoint import Checkpoint, load_checkpoint
from mqtt_kafka_sync.replay.controller import ControllerSettings, Decision
from mqtt_kafka_sync.replay.copier import Copier, Progress, ReplayResult, replay_consumer
from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.lag import LagReader, LagSnapshot, describe_partitions
from mqtt_kafka_sync.replay.lag_process import IsolatedLagReader
from mqtt_kafka_sync.replay.plan import RangeSpec, make_plan
from mqtt_kafka_sync.replay.target import KafkaTarget
from mqtt_kafka_sync.replay.throttle import FixedRateThrottle, LagThrottle, ThrottleLoop, TopicTemplates

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
        help="copy a range of a Kafka topic into another topic, paced by consumer lag, resumable",
        description="Copies the records of --source in the given range to --target, in order per "
        "partition, keeping keys, values, headers and timestamps and adding the header "
        "replay.source=<topic>/<partition>/<offset>. Ranges are half-open: --to-offset and --to-time "
        "are not included. Without a start, a partition's range starts at its oldest record; without "
        "an end, at its end when the replay is planned. Progress goes to a checkpoint file: after "
        "Ctrl-C, a crash or kill -9, the same command resumes where the target's confirmations ended "
        "(records produced after the last checkpoint may be written twice; the resume says how many "
        "at most). With --throttle-group, the rate follows the named groups' lag on --target "
        "(docs/replay.md).",
    )
    replay.add_argument("--source", required=True, metavar="TOPIC", help="topic to read")
    replay.add_argument("--target", required=True, metavar="TOPIC", help="topic to write")
    replay.add_argument(
        "--bootstrap",
        default=_bootstrap_default(),
        help="Kafka of both topics (default $KAFKA_BOOTSTRAP_SERVERS or %(default)s)",
    )
    replay.add_argument("--target-bootstrap", metavar="SERVERS", help="Kafka of --target, if another one")
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
        help="checkpoint file (default ./replay-<source>-<target>.checkpoint.json); resumed when it exists",
    )
    replay.add_argument("--dry-run", action="store_true", help="print the plan, copy nothing, write nothing")
    replay.add_argument(
        "--create-target",
        action="store_true",
        help="create --target with the source's partition count if missing",
    )
    throttle = replay.add_argument_group("throttle (by consumer lag on --target)")
    throttle.add_argument(
        "--throttle-group",
        action="append",
        default=[],
        metavar="GROUP",
        help="consumer group to watch (repeatable)",
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
    spec = RangeSpec(
        source=args.source,
        target=args.target,
        partitions=tuple(sorted(set(args.partition))),
        from_offsets=tuple(args.from_offset),
        to_offsets=tuple(args.to_offset),
        from_time=args.from_time,
        to_time=args.to_time,
    )
    target_bootstrap: str = args.target_bootstrap or args.bootstrap
    if spec.source == spec.target and target_bootstrap == args.bootstrap:
        raise ReplayError("--target is --source: the replay would read its own output")
    settings = _controller_settings(args)
    path: Path = args.checkpoint or Path(f"replay-{spec.source}-{spec.target}.checkpoint.json")
    client_id = f"mqtt-kafka-sync-replay-{uuid.uuid4().hex[:12]}"
    consumer = replay_consumer(args.bootstrap, client_id)
    try:
        checkpoint = _checkpoint(args, spec, path, consumer, target_bootstrap)
        if checkpoint is None:
            return 0
        _print_plan(
            checkpoint, path, settings, args, resuming=checkpoint.done > 0 or checkpoint.may_repeat > 0
        )
        if args.dry_run:
            return 0
        target = KafkaTarget(
            target_bootstrap,
            spec.target,
            same_partitions=checkpoint.plan.same_partitions,
            client_id=client_id,
        )
        try:
            result = _run(
                args,
                checkpoint=checkpoint,
                path=path,
                consumer=consumer,
                target=target,
                settings=settings,
                target_bootstrap=target_bootstrap,
            )
        finally:
            target.close()
    finally:
        consumer.close()
    if not result.complete:
        print(
            f"stopped at {result.done:,} of {result.total:,}; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    print(f"replayed {result.total:,} offsets of {spec.source} into {spec.target} ({result.sent:,} sent)")
    return 0


def _controller_settings(args: argparse.Namespace) -> ControllerSettings | None:
    if not args.throttle_group:
        for option in ("lag_high", "lag_low", "step_max"):
            if getattr(args, option) is not None:
                raise ReplayError(f"--{option.replace('_', '-')} needs --throttle-group")
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


def _checkpoint(
    args: argparse.Namespace, spec: RangeSpec, path: Path, consumer: Consumer, target_bootstrap: str
) -> Checkpoint | None:
    """The checkpoint to run from (resumed or fresh); None when there is nothing to do."""
    source = _partitions(args.bootstrap, spec.source)
    if not source:
        raise ReplayError(f"topic {spec.source} does not exist at {args.bootstrap}")
    target = len(_partitions(target_bootstrap, spec.target))
    if not target:
        if not args.create_target:
            raise ReplayError(f"topic {spec.target} does not exist; create it, or pass --create-target")
        target = len(source)
        if args.dry_run:
            print(f"would create {spec.target} with {target} partitions, as {spec.source} has")
        else:
            ensure_topics(target_bootstrap, [spec.target], partitions=target)
            print(f"created {spec.target} with {target} partitions, as {spec.source} has")
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
    if target != existing.plan.target_partitions:
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
    target: KafkaTarget,
    settings: ControllerSettings | None,
    target_bootstrap: str,
) -> ReplayResult:
    throttle: AckThrottle | None = None
    loop: ThrottleLoop | None = None
    line = ProgressLine(sys.stderr)
    if settings is not None:
        lag_throttle = LagThrottle(settings)
        reader = IsolatedLagReader(
            target_bootstrap, args.throttle_group, topics=TopicTemplates([checkpoint.plan.target])
        )
        loop = ThrottleLoop(
            lag_throttle, reader.read_lag, settings.interval, on_decision=line.decision, close=reader.close
        )
        throttle = lag_throttle
    elif args.rate_max is not None:
        throttle = FixedRateThrottle(args.rate_max)
    stop = threading.Event()
    copier = Copier(
        checkpoint,
        path,
        consumer,
        target,
        throttle=throttle,
        stop=stop,
        on_progress=line.progress,
        progress_interval=args.progress_interval,
    )
    with _stop_on_signals(stop):
        if loop is not None:
            loop.start()
        try:
            return copier.run()
        finally:
            if loop is not None:
                loop.stop()


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
    *,
    resuming: bool,
) -> None:
    plan = checkpoint.plan
    if plan.same_partitions:
        mapping = f"same partition numbers ({plan.target_partitions} partitions)"
    else:
        mapping = (
            f"partition by key, murmur2 as Java ({len(plan.ranges)} source -> {plan.target_partitions} "
            "target partitions; records without a key go to any partition)"
        )
    print(f"replay {plan.source} -> {plan.target}: {mapping}")
    print(f"  {'partition':>9}  {'from':>12}  {'to (excl.)':>12}  {'offsets':>12}  {'done':>12}")
    for r in plan.ranges:
        done = checkpoint.next[r.partition] - r.start
        print(f"  {r.partition:>9}  {r.start:>12,}  {r.end:>12,}  {r.span:>12,}  {done:>12,}")
    print(f"  {'total':>9}  {'':>12}  {'':>12}  {plan.total:>12,}  {checkpoint.done:>12,}")
    for note in plan.notes:
        print(f"  note: {note}")
    print(
        "  offsets count records; on compacted or transactional topics some offsets hold none, "
        "so fewer records may be copied"
        if plan.total
        else "  nothing to copy"
    )
    if settings is not None:
        print(
            f"  throttle ({settings.mode}): lag of {', '.join(args.throttle_group)} on {plan.target} between "
            f"{settings.lag_low:,} and {settings.lag_high:,}; {settings.rate_min:,.0f} to "
            f"{settings.rate_max:,.0f} records/s, rising {settings.step:,.0f}/s per {settings.interval:g}s"
        )
    elif args.rate_max is not None:
        print(f"  fixed rate: {args.rate_max:,.0f} records/s")
    print(f"  checkpoint: {path}")
    if resuming:
        print(
            f"  resuming: {checkpoint.done:,} done; up to {checkpoint.may_repeat:,} records produced after "
            "the last checkpoint may be written again"
        )
    sys.stdout.flush()


def _spec_text(spec: RangeSpec) -> str:
    parts = [f"{spec.source} -> {spec.target}"]
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
