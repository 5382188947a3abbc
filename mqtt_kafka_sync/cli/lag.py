"""``mqtt-kafka-sync lag``: the lag table of consumer groups, per partition, in records and in time."""

from __future__ import annotations

import argparse

from mqtt_kafka_sync.cli.kafka_options import add_command_config, bootstrap_default, duration, kafka_of
from mqtt_kafka_sync.kafka.lag import LagReader, LagSnapshot


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``lag`` command."""
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
        default=bootstrap_default(),
        help="Kafka (default $KAFKA_BOOTSTRAP_SERVERS or %(default)s)",
    )
    lag.add_argument("--topic", action="append", default=[], metavar="TOPIC", help="only these topics")
    lag.add_argument("--no-time-lag", action="store_true", help="skip reading record timestamps")
    add_command_config(lag)
    lag.set_defaults(func=cmd_lag)


def cmd_lag(args: argparse.Namespace) -> int:
    topics = set(args.topic)
    reader = LagReader(
        kafka_of(args),
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
    return duration(seconds)
