"""``mqtt-kafka-sync replay``: backfill a Kafka topic range into a topic or, through a command relay
connector's routes, into MQTT, paced by consumer lag.

Parsing and printing only: the options become a :class:`~mqtt_kafka_sync.replay.request.ReplayRequest`
(whose defaults, from ``config/throttle.py``, apply to every option not given), and
:func:`~mqtt_kafka_sync.replay.command.run_replay` plans and runs it. The main CLI calls
:func:`register` with its subparsers; the chosen handler is ``args.func`` and returns the exit code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, TextIO

from mqtt_kafka_sync.cli.kafka_options import (
    DEFAULT_BOOTSTRAP,
    add_command_config,
    bootstrap_default,
    command_settings,
    duration,
)
from mqtt_kafka_sync.config import throttle as throttle_defaults
from mqtt_kafka_sync.replay.command import run_replay
from mqtt_kafka_sync.replay.mqtt_target import STALL_TIMEOUT_S
from mqtt_kafka_sync.replay.progress import Progress
from mqtt_kafka_sync.replay.request import ReplayRequest, ThrottleRequest
from mqtt_kafka_sync.replay.session import Planned, TopicCreation
from mqtt_kafka_sync.throttle.controller import Decision


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``replay`` command."""
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
    add_command_config(replay)
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
    defaults = ThrottleRequest()
    throttle.add_argument(
        "--rate-min", type=float, metavar="R", help=f"floor, records/s (default {defaults.rate_min:g})"
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
        help="most the rate rises per interval, records/s (default: high / "
        f"({throttle_defaults.STEP_DIVISOR} * interval))",
    )
    throttle.add_argument(
        "--lag-interval",
        type=float,
        metavar="SECONDS",
        help=f"seconds between lag reads (default {defaults.interval:g})",
    )
    throttle.add_argument(
        "--throttle-mode",
        choices=("enforce", "observe"),
        help=f"observe: report the rate it would set, copy unthrottled (default {defaults.mode})",
    )
    replay.add_argument(
        "--progress-interval",
        type=float,
        metavar="SECONDS",
        help=f"default {ReplayRequest(source='').progress_interval:g}",
    )
    replay.set_defaults(func=cmd_replay)


def cmd_replay(args: argparse.Namespace) -> int:
    outcome = run_replay(_request(args), _Printout(sys.stderr, args.to_mqtt))
    if outcome.planned is None:
        print(f"checkpoint {outcome.checkpoint}: this replay is already complete; nothing to do")
        return 0
    result = outcome.result
    if result is None:
        return 0  # --dry-run: the plan is all
    note = f"; {outcome.dead_letters}" if outcome.dead_letters else ""
    if not result.complete:
        print(
            f"stopped at {result.done:,} of {result.total:,}{note}; run the same command again to resume",
            file=sys.stderr,
        )
        return 130
    label = outcome.planned.checkpoint.plan.target_label
    print(f"replayed {result.total:,} offsets of {args.source} into {label} ({result.sent:,} sent{note})")
    return 0


def _request(args: argparse.Namespace) -> ReplayRequest:
    """The options, as the replay package takes them; an option not given keeps the request's default."""
    throttle = ThrottleRequest(
        **_given(
            groups=tuple(args.throttle_group),
            topics=tuple(args.throttle_topic),
            lag_high=args.lag_high,
            lag_low=args.lag_low,
            rate_min=args.rate_min,
            rate_max=args.rate_max,
            step_max=args.step_max,
            interval=args.lag_interval,
            mode=args.throttle_mode,
        )
    )
    return ReplayRequest(
        source=args.source,
        **_given(
            target=args.target,
            to_mqtt=args.to_mqtt,
            bootstrap=args.bootstrap,
            default_bootstrap=bootstrap_default(),
            target_bootstrap=args.target_bootstrap,
            command_config=command_settings(args),
            partitions=tuple(args.partition),
            from_offsets=tuple(args.from_offset),
            to_offsets=tuple(args.to_offset),
            from_time=args.from_time,
            to_time=args.to_time,
            checkpoint=args.checkpoint,
            dry_run=args.dry_run,
            create_target=args.create_target,
            expiry_from=args.expiry_from,
            stall_timeout=args.stall_timeout,
            progress_interval=args.progress_interval,
        ),
        throttle=throttle,
    )


def _given(**options: Any) -> dict[str, Any]:
    """``options`` without those not given (None): the request's defaults apply to them."""
    return {name: value for name, value in options.items() if value is not None}


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
        eta = progress.eta_seconds
        text = (
            f"replay {progress.done:,}/{progress.total:,} ({progress.percent:.1f}%)  "
            f"{progress.rate:,.0f} rec/s  ETA {duration(eta) if eta is not None else '?'}"
        )
        if self._decision is not None:
            lag = "unknown" if self._decision.lag is None else f"{self._decision.lag:,}"
            text += f"  limit {self._decision.rate:,.0f}/s  lag {lag}"
        if self._tty:
            self._out.write("\r" + text + ("\n" if progress.finished else ""))
        else:
            self._out.write(text + "\n")
        self._out.flush()


class _Printout(ProgressLine):
    """The :class:`~mqtt_kafka_sync.replay.command.Reporter` of the command: progress on ``out``, the
    plan on stdout."""

    def __init__(self, out: TextIO, to_mqtt: Path | None) -> None:
        super().__init__(out)
        self._to_mqtt = to_mqtt

    def creation(self, creation: TopicCreation) -> None:
        _print_creation(creation)

    def plan(self, planned: Planned) -> None:
        _print_plan(planned, self._to_mqtt)

    def dead_letters(self, summary: str) -> None:
        print(summary, file=sys.stderr)


def _print_creation(creation: TopicCreation) -> None:
    verb = "would create" if creation.dry_run else "created"
    print(f"{verb} {creation.topic} with {creation.partitions} partitions, as {creation.source} has")


def _print_plan(planned: Planned, to_mqtt: Path | None) -> None:
    checkpoint = planned.checkpoint
    plan = checkpoint.plan
    if plan.target_kind == "mqtt":
        print(f"replay {plan.source} -> MQTT through relay connector {plan.target} ({to_mqtt})")
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
    for text in planned.where:
        print(text)
    print(f"  {'partition':>9}  {'from':>12}  {'to (excl.)':>12}  {'offsets':>12}  {'done':>12}")
    for r in planned.rows:
        print(f"  {r.partition:>9}  {r.start:>12,}  {r.end:>12,}  {r.span:>12,}  {r.done:>12,}")
    print(f"  {'total':>9}  {'':>12}  {'':>12}  {plan.total:>12,}  {checkpoint.done:>12,}")
    for note in plan.notes:
        print(f"  note: {note}")
    print(
        "  offsets count records; on compacted or transactional topics some offsets hold none, "
        "so fewer records may be sent"
        if plan.total
        else "  nothing to copy"
    )
    settings = planned.settings
    if settings is not None:
        watched = ", ".join(sorted(planned.watched))
        print(
            f"  throttle ({settings.mode}): lag of {', '.join(planned.groups)} on {watched} between "
            f"{settings.lag_low:,} and {settings.lag_high:,}; {settings.rate_min:,.0f} to "
            f"{settings.rate_max:,.0f} records/s, rising {settings.step:,.0f}/s per {settings.interval:g}s"
        )
    elif planned.fixed_rate is not None:
        print(f"  fixed rate: {planned.fixed_rate:,.0f} records/s")
    print(f"  checkpoint: {planned.path}")
    if planned.resuming:
        print(
            f"  resuming: {checkpoint.done:,} done; up to {checkpoint.may_repeat:,} records sent after "
            "the last checkpoint may be sent again"
        )
    sys.stdout.flush()
