"""Load scenarios for the MQTT -> Kafka ingest path; each prints a results table.

    python -m loadtests.run target            # the issue's target: QoS 1, 256 B, 1,000 devices
    python -m loadtests.run latency --rate 10000
    python -m loadtests.run drain --messages 300000
    python -m loadtests.run payload | ladder | cardinality | tasks
    python -m loadtests.run outage --outage 60  # RSS while Kafka is down for 60 s under 5,000/s
    python -m loadtests.run target --metrics  # the bridge with its metrics port on
    python -m loadtests.run smoke             # tiny, for CI: asserts 0 lost, no speed claims
    python -m loadtests.run sharded           # one worker: shared vs sharded mode (loadtests/sharded.py)
    python -m loadtests.run relay --qos 2     # Kafka -> run -> MQTT against mosquitto_pub (relay_load.py)
    python -m loadtests.run kafka-latency --rate 10000 --warmup 10  # Kafka alone (kafka_alone.py)

Brokers: the local stack under ``.stack-load/`` on ports the OS picks (started and stopped here),
or ``--bootstrap`` and ``--mqtt-uri`` for brokers of your own (then CPU per broker process is not
reported). Every bridge figure is shown beside a baseline measured in the same run: the same
generator through Mosquitto to the C subscriber ``mosquitto_sub``, no Kafka.

Memory: ``rss MB`` is the largest task's peak; ``tree MB`` the peak of the RSS summed over the
whole ``run`` process tree (supervisor, tasks, lag reader, resource tracker), sampled every 0.1 s,
each process printed with its own peak and the load average at the tree's peak (``memory.py``).
The module is over 350 lines: one scenario table, its argument parser and its runners read as one.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from confluent_kafka import Consumer, TopicPartition

from loadtests.memory import TreeMemory, print_tree
from loadtests.publisher import LoadSpec, generate
from mqtt_kafka_sync.devstack.paths import repo_root
from mqtt_kafka_sync.devstack.ports import free_ports
from mqtt_kafka_sync.devstack.stack import LocalStack
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.verify import VerifyReport, verify_topic
from tests.integration.worker_process import WorkerProcess, write_source_config

CLK = os.sysconf("SC_CLK_TCK")
PRODUCER_OVERRIDES: dict[str, str] = {}
METRICS = {"on": False}
"""``--metrics``: run the bridge with its metrics port on (the supervisor serves /metrics)."""
LATENCY_WARMUP_S = 1.0
"""Latency percentiles leave out the first second of sends (generator and connection start-up)."""


TARGET_WARMUP_S = 10.0
"""``target`` first offers its load this long through the same worker and Kafka topic: a Kafka just
started spends most of a core compiling its request path (18 us of Kafka CPU per message cold, 7 us
warm, docs/benchmarks.md "Session 8"), and on two cores that CPU came out of the bridge's share."""


@dataclass
class Brokers:
    kafka_bootstrap: str
    mqtt_uri: str
    mqtt_host: str
    mqtt_port: int
    kafka_pid: int | None = None
    mqtt_pid: int | None = None
    stack: LocalStack | None = None
    """The local stack when this run started it (the outage scenario stops and starts its Kafka)."""


@contextmanager
def brokers(args: argparse.Namespace) -> Iterator[Brokers]:
    if args.bootstrap and args.mqtt_uri:
        host, port = args.mqtt_uri.split("://")[1].rsplit(":", 1)
        yield Brokers(args.bootstrap, args.mqtt_uri, host, int(port))
        return
    # A fresh Kafka and Mosquitto every run: topics of earlier runs slow a broker's start and
    # restart (hundreds of partitions to load) and add background work to what is measured.
    root = repo_root() / ".stack-load"
    shutil.rmtree(root, ignore_errors=True)
    stack = LocalStack.ephemeral(root, libs_dir=repo_root() / ".stack" / "kafka" / "libs")
    stack.up()
    try:
        yield Brokers(
            stack.kafka_bootstrap,
            stack.mqtt_uri,
            stack.mqtt_host,
            stack.mqtt_port,
            stack.kafka.process.pid,
            stack.mosquitto.process.pid,
            stack,
        )
    finally:
        stack.down()


def cpu_seconds(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / CLK
        except (FileNotFoundError, IndexError):
            continue
    return total


def _status_kb(pids: list[int], field_name: str) -> list[int]:
    values: list[int] = []
    for pid in pids:
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except FileNotFoundError:
            continue
        values.extend(int(line.split()[1]) for line in lines if line.startswith(field_name))
    return values


def machine_cpu_seconds() -> float:
    """CPU seconds every core of the machine spent busy since boot (``/proc/stat``: all but idle
    and iowait)."""
    with open("/proc/stat") as stat:
        fields = [int(n) for n in stat.readline().split()[1:]]
    return (sum(fields) - fields[3] - fields[4]) / CLK


def print_budget(label: str, total: int, machine: float, parts: dict[str, float]) -> None:
    """One ``[cpu]`` line: the machine's CPU per message over a run and how much of it each named
    process took (the rest: the generators, the counting subscriber, everything else)."""
    named = " ".join(f"{name} {1e6 * cpu / total:.1f}" for name, cpu in parts.items())
    rest = 1e6 * (machine - sum(parts.values())) / total
    print(f"[cpu] {label}: machine {1e6 * machine / total:.1f} us/msg: {named} rest {rest:.1f}")


def peak_rss_mb(pids: list[int]) -> float:
    """The largest peak resident set (VmHWM) among ``pids``."""
    return max(_status_kb(pids, "VmHWM:"), default=0) / 1024


def rss_mb(pids: list[int]) -> float:
    """The largest current resident set (VmRSS) among ``pids``."""
    return max(_status_kb(pids, "VmRSS:"), default=0) / 1024


@dataclass
class Row:
    scenario: str
    label: str
    offered: float
    messages: int
    baseline_rate: float = 0.0
    bridge_rate: float = 0.0
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    p999_ms: float = 0.0
    bridge_us_per_msg: float = 0.0
    mosquitto_us_per_msg: float = 0.0
    kafka_us_per_msg: float = 0.0
    bridge_peak_rss_mb: float = 0.0
    """The largest peak RSS among the task processes."""
    tree_peak_rss_mb: float = 0.0
    """The peak of the summed RSS over the run's whole process tree (``loadtests/memory.py``)."""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratio(self) -> float:
        return self.bridge_rate / self.baseline_rate if self.baseline_rate else 0.0


def last_append_s(bootstrap: str, topic: str) -> float:
    """When Kafka appended the newest record of ``topic`` (LogAppendTime), in ``time.time()`` seconds.

    The end of a bridge run. The status file the harness polls shows "all acknowledged" late: the
    task shares its counters twice a second and ``run`` writes the file once a second (0.9-1.2 s
    late in session 9's runs), a delay the baseline (``mosquitto_sub`` exiting on its last message)
    does not have."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"timing-{uuid.uuid4().hex[:6]}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        marks = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10) for p in partitions}
        ends = {p: high for p, (_, high) in marks.items() if high > 0}
        consumer.assign([TopicPartition(topic, p, end - 1) for p, end in ends.items()])
        newest, left, deadline = 0, len(ends), time.monotonic() + 30
        while left and time.monotonic() < deadline:
            for msg in consumer.consume(left, timeout=1.0):
                if msg.error() is None:
                    newest, left = max(newest, msg.timestamp()[1]), left - 1
        if left:
            raise SystemExit(f"timing: the newest record of {left} partition(s) of {topic} did not arrive")
        return newest / 1000.0
    finally:
        consumer.close()


def baseline(b: Brokers, spec: LoadSpec) -> float:
    """Messages/s from the generator through Mosquitto to ``mosquitto_sub`` (QoS 1), no Kafka."""
    root = spec.topic_template.split("/", 1)[0]
    total = spec.devices * spec.messages_per_device
    sub = subprocess.Popen(
        [
            "mosquitto_sub",
            "-h",
            b.mqtt_host,
            "-p",
            str(b.mqtt_port),
            "-q",
            str(spec.qos),
            "-t",
            f"{root}/#",
            "-C",
            str(total),
            "-F",
            "%l",
        ],
        stdout=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    broker = [b.mqtt_pid] if b.mqtt_pid else []
    machine0, mosquitto0 = machine_cpu_seconds(), cpu_seconds(broker)
    started = generate(spec).started_at
    sub.wait(600)
    rate = total / (time.time() - started)
    parts = {"mosquitto": cpu_seconds(broker) - mosquitto0} if broker else {}
    print_budget("baseline", total, machine_cpu_seconds() - machine0, parts)
    return rate


def load_connector(b: Brokers, spec: LoadSpec, workdir: Path, **extra: Any) -> tuple[str, str, Path]:
    """A fresh topic (6 partitions, LogAppendTime) and a one-route source connector file for
    ``spec``'s topics, with ``--producer`` settings; returns (tag, topic, config file)."""
    tag = uuid.uuid4().hex[:6]
    topic = f"load-{tag}"
    ensure_topics(
        b.kafka_bootstrap,
        [topic, f"{topic}-dlq"],
        partitions=6,
        config={"message.timestamp.type": "LogAppendTime"},
    )
    config = write_source_config(
        workdir / f"{tag}.json",
        b,
        name=f"load-{tag}",
        root=spec.topic_template.split("/", 1)[0],
        topic=topic,
        **{"mqtt.takeover.enabled": "false", **extra, **PRODUCER_OVERRIDES},
    )
    return tag, topic, config


def start_worker(config: Path, workdir: Path, label: str) -> WorkerProcess:
    """``mqtt-kafka-sync run`` on ``config``, subscribed; with ``--metrics`` on a free port."""
    port = free_ports(1)[0] if METRICS["on"] else 0
    worker = WorkerProcess(config, workdir, label, metrics_port=port).start()
    worker.wait_subscribed()
    return worker


def tree_memory(worker: WorkerProcess, label: str) -> TreeMemory:
    """Print the tree's RSS just after start, then sample it until :meth:`TreeMemory.stop`."""
    assert worker.proc is not None
    at_start = TreeMemory(worker.proc.pid, worker.task_pids)
    at_start.sample()
    print_tree(f"{label}, just after start", at_start.summary())
    return TreeMemory(worker.proc.pid, worker.task_pids).start()


def bridge_run(
    b: Brokers,
    spec: LoadSpec,
    workdir: Path,
    *,
    tasks: int = 1,
    value_format: str = "bytes",
    backlog: bool = False,
    warmup_s: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> tuple[float, VerifyReport, dict[str, Any]]:
    """Run the real ``mqtt-kafka-sync run`` against ``spec``'s load; returns (msg/s, report, costs).

    ``warmup_s``: first offer the same load for that long through the same worker, topic and
    brokers (JIT-compiling Kafka's request path, filling caches), then measure; the report only
    reads records Kafka appended after the warm-up. ``extra``: more connector keys."""
    tag, topic, config = load_connector(
        b,
        spec,
        workdir,
        **{"tasks.max": tasks, "routes.telemetry.value.format": value_format, **(extra or {})},
    )
    total = spec.devices * spec.messages_per_device
    worker = start_worker(config, workdir, f"worker-{tag}")
    if backlog:  # queue everything on the broker while the worker is away, then time the drain
        assert worker.stop() == 0
        generate(spec)
        worker = start_worker(config, workdir, f"worker-{tag}-drain")
    memory = tree_memory(worker, f"{tasks} task(s)")
    warm = 0
    since_ms: int | None = None
    if warmup_s > 0 and not backlog:
        per_device = max(1, round(spec.rate * warmup_s / spec.devices))
        warm = per_device * spec.devices
        generate(replace(spec, messages_per_device=per_device))
        while worker.totals().get("acked", 0) < warm:
            time.sleep(0.05)
        time.sleep(0.5)
        since_ms = int(time.time() * 1000)
    pids = worker.task_pids()
    broker_pids = [p for p in (b.mqtt_pid, b.kafka_pid) if p]
    cpu0 = [cpu_seconds(pids), *(cpu_seconds([p]) for p in broker_pids)]
    t0, machine0, started = time.monotonic(), machine_cpu_seconds(), time.time()
    if not backlog:
        started = generate(spec).started_at
    while worker.totals().get("acked", 0) < warm + total and time.monotonic() - t0 < 600:
        time.sleep(0.05)
    seen = time.time()
    elapsed = last_append_s(b.kafka_bootstrap, topic) - started
    print(
        f"[timing] bridge: last record appended {elapsed:.2f} s after the first send; the status file "
        f"showed every message acknowledged {seen - started:.2f} s after it"
    )
    cpu1 = [cpu_seconds(pids), *(cpu_seconds([p]) for p in broker_pids)]
    names = ("task", *(n for n, p in (("mosquitto", b.mqtt_pid), ("kafka", b.kafka_pid)) if p))
    parts = {name: after - before for name, before, after in zip(names, cpu0, cpu1, strict=True)}
    print_budget("bridge", total, machine_cpu_seconds() - machine0, parts)
    costs: dict[str, Any] = {"bridge_us": 1e6 * (cpu1[0] - cpu0[0]) / total, "rss_mb": peak_rss_mb(pids)}
    for name, before, after in zip(("mosquitto_us", "kafka_us"), cpu0[1:], cpu1[1:], strict=False):
        costs[name] = 1e6 * (after - before) / total
    costs["memory"] = memory.stop()
    print_tree(f"{tasks} task(s), under load", costs["memory"])
    worker.stop()
    expected = dict.fromkeys(_device_ids(spec), spec.messages_per_device)
    report = verify_topic(
        b.kafka_bootstrap,
        topic,
        expected,
        timeout_s=300,
        idle_s=20,
        topic_template=spec.topic_template,
        since_ms=since_ms,
        latency_warmup_s=LATENCY_WARMUP_S,
    )
    return total / elapsed, report, costs


def outage_run(b: Brokers, spec: LoadSpec, workdir: Path, *, outage_s: float, lead_s: float = 10.0) -> Row:
    """Steady load through a Kafka outage: Kafka stops ``lead_s`` after the load starts and comes back
    ``outage_s`` later. Prints the task's resident memory every 5 s; the row's RSS is the peak."""
    if b.stack is None:
        raise SystemExit("the outage scenario stops Kafka: it needs the local stack (no --bootstrap)")
    tag, topic, config = load_connector(b, spec, workdir)
    total = spec.devices * spec.messages_per_device
    worker = start_worker(config, workdir, f"worker-{tag}")
    pids = worker.task_pids()
    memory = tree_memory(worker, "outage")
    load = threading.Thread(target=generate, args=(spec,), daemon=True)
    t0 = time.monotonic()
    load.start()
    curve: list[tuple[float, float, float, int, str]] = []
    kafka = "up"  # then "down", then "back"
    next_sample = 0.0
    while worker.totals().get("acked", 0) < total and time.monotonic() - t0 < lead_s + outage_s + 600:
        now = time.monotonic() - t0
        if kafka == "up" and now >= lead_s:
            b.stack.kafka.stop()
            kafka = "down"
        elif kafka == "down" and now >= lead_s + outage_s:
            b.stack.kafka.start()
            kafka = "back"
        if now >= next_sample:
            curve.append((now, rss_mb(pids), memory.sample(), worker.totals().get("acked", 0), kafka))
            next_sample += 5.0
        time.sleep(0.2)
    elapsed = time.monotonic() - t0
    load.join(600)
    peak = peak_rss_mb(pids)
    tree = memory.stop()
    worker.stop()
    print(f"\n[outage] Kafka stopped at {lead_s:.0f} s for {outage_s:.0f} s; task RSS, tree RSS (MB), acked:")
    for t, mb, tree_mb, acked, state in curve:
        print(f"  {t:6.1f} s  {mb:6.1f} MB  {tree_mb:6.1f} MB  {acked:>9,}  kafka {state}")
    print_tree("outage, whole run", tree)
    said = [line for line in worker.log().splitlines() if " WARNING " in line or " ERROR " in line]
    print(f"[outage] the worker's warnings and errors ({len(said)}):", *said[:20], sep="\n  ")
    report = verify_topic(
        b.kafka_bootstrap,
        topic,
        dict.fromkeys(_device_ids(spec), spec.messages_per_device),
        timeout_s=300,
        idle_s=20,
        topic_template=spec.topic_template,
    )
    during = [mb for _t, mb, _tree, _a, state in curve if state == "down"]
    during_tree = [mb for _t, _mb, mb, _a, state in curve if state == "down"]
    return Row(
        "outage",
        f"kafka down {outage_s:.0f} s",
        spec.rate,
        total,
        bridge_rate=total / elapsed,
        lost=report.lost,
        duplicated=report.duplicated,
        out_of_order=report.out_of_order,
        bridge_peak_rss_mb=peak,
        tree_peak_rss_mb=tree["tree_peak_rss_mb"],
        extra={
            "rss_mb_during_outage_max": max(during, default=0.0),
            "tree_rss_mb_during_outage_max": max(during_tree, default=0.0),
            "memory": tree,
            "curve": curve,
        },
    )


def _device_ids(spec: LoadSpec) -> list[str]:
    from mqtt_kafka_sync.sim.payload import device_ids  # noqa: PLC0415

    return device_ids(spec.devices)


def measure(
    b: Brokers,
    scenario: str,
    label: str,
    spec: LoadSpec,
    workdir: Path,
    *,
    tasks: int = 1,
    value_format: str = "bytes",
    backlog: bool = False,
    with_baseline: bool = True,
    warmup_s: float = 0.0,
    extra: dict[str, Any] | None = None,
) -> Row:
    base = baseline(b, spec) if with_baseline else 0.0
    rate, report, costs = bridge_run(
        b,
        spec,
        workdir,
        tasks=tasks,
        value_format=value_format,
        backlog=backlog,
        warmup_s=warmup_s,
        extra=extra,
    )
    lat = report.latency
    return Row(
        scenario,
        label,
        spec.rate,
        spec.devices * spec.messages_per_device,
        base,
        rate,
        report.lost,
        report.duplicated,
        report.out_of_order,
        lat.p50_ms if lat else 0.0,
        lat.p99_ms if lat else 0.0,
        lat.p999_ms if lat else 0.0,
        costs["bridge_us"],
        costs.get("mosquitto_us", 0.0),
        costs.get("kafka_us", 0.0),
        costs["rss_mb"],
        costs["memory"]["tree_peak_rss_mb"],
        extra={"memory": costs["memory"]},
    )


def print_table(rows: list[Row]) -> None:
    head = (
        f"{'scenario':<11} {'label':<16} {'offered/s':>9} {'msgs':>7} {'base/s':>8} {'bridge/s':>8}"
        f" {'ratio':>5}"
        f" {'lost':>4} {'dup':>4} {'ooo':>4} {'p50ms':>7} {'p99ms':>7} {'p999ms':>7} {'us/msg':>6}"
        f" {'mosq us':>7} {'kafka us':>8} {'rss MB':>6} {'tree MB':>7}"
    )
    print(head)
    for r in rows:
        print(
            f"{r.scenario:<11} {r.label:<16} {r.offered:>9,.0f} {r.messages:>7,} {r.baseline_rate:>8,.0f}"
            f" {r.bridge_rate:>8,.0f} {r.ratio:>5.2f} {r.lost:>4} {r.duplicated:>4} {r.out_of_order:>4}"
            f" {r.p50_ms:>7.1f} {r.p99_ms:>7.1f} {r.p999_ms:>7.1f} {r.bridge_us_per_msg:>6.1f}"
            f" {r.mosquitto_us_per_msg:>7.1f} {r.kafka_us_per_msg:>8.1f} {r.bridge_peak_rss_mb:>6.0f}"
            f" {r.tree_peak_rss_mb:>7.1f}"
        )


def scenarios(args: argparse.Namespace, b: Brokers, workdir: Path) -> list[Row]:
    from loadtests.kafka_alone import kafka_latency_row  # noqa: PLC0415 - it imports this module
    from loadtests.relay_load import relay_rows  # noqa: PLC0415 - it imports this module
    from loadtests.sharded import sharded_rows  # noqa: PLC0415 - it imports this module

    def spec(
        devices: int = 1000, per_device: int | None = None, rate: float = 60_000, size: int = 256
    ) -> LoadSpec:
        per = per_device or max(1, args.messages // devices)
        root = f"l{uuid.uuid4().hex[:6]}"
        return LoadSpec(
            b.mqtt_host,
            b.mqtt_port,
            f"{root}/plants/{{plant}}/devices/{{device}}/telemetry",
            devices,
            per,
            rate,
            payload_size=size,
            processes=args.processes,
        )

    name, fmt = args.scenario, args.format
    runs: dict[str, Any] = {
        "smoke": lambda: [measure(b, name, "100 devices", spec(100, 20, 2000), workdir, with_baseline=False)],
        "target": lambda: [
            measure(
                b,
                name,
                f"qos1 256B {fmt}",
                spec(rate=args.rate or 60_000),
                workdir,
                value_format=fmt,
                warmup_s=TARGET_WARMUP_S if args.warmup is None else args.warmup,
            )
        ],
        "latency": lambda: [
            measure(
                b,
                name,
                f"{args.rate or 10_000:,.0f}/s offered",
                spec(rate=args.rate or 10_000),
                workdir,
                value_format=fmt,
                with_baseline=False,
                warmup_s=args.warmup or 0.0,
            )
        ],
        "drain": lambda: [
            measure(
                b,
                name,
                "backlog",
                spec(rate=200_000),
                workdir,
                backlog=True,
                value_format=fmt,
                with_baseline=False,
            )
        ],
        "payload": lambda: [
            # the same bytes per step from 1 KB on: 8 KB messages go 1/8 as many
            measure(b, name, f"{n} B", spec(size=n, per_device=_per_device(args, n)), workdir)
            for n in (64, 256, 1024, 8192)
        ],
        "ladder": lambda: [
            measure(
                b,
                name,
                f"{r:,} /s",
                spec(rate=r, per_device=max(1, r * 10 // 1000)),
                workdir,
                with_baseline=False,
            )
            for r in (5_000, 10_000, 20_000, 30_000, 40_000)
        ],
        "cardinality": lambda: [
            measure(b, name, f"{d:,} devices", spec(d, max(1, args.messages // d)), workdir)
            for d in (100, 10_000, 50_000)
        ],
        "outage": lambda: [
            outage_run(
                b,
                spec(
                    rate=args.rate or 5_000,
                    per_device=round((args.rate or 5_000) * (args.outage + 40) / 1000),
                ),
                workdir,
                outage_s=args.outage,
            )
        ],
        "tasks": lambda: [
            measure(b, name, f"{t} task(s)", spec(), workdir, tasks=t, with_baseline=False) for t in (1, 2, 4)
        ],
        "sharded": lambda: sharded_rows(b, workdir, lambda: spec(rate=args.rate or 60_000)),
        "relay": lambda: relay_rows(b, workdir, messages=args.messages, qos=args.qos, rate=args.rate),
        "kafka-latency": lambda: [
            kafka_latency_row(
                b,
                rate=args.rate or 10_000,
                messages=args.messages,
                warmup_s=args.warmup or 0.0,
                overrides=PRODUCER_OVERRIDES,
            )
        ],
    }
    rows: list[Row] = runs[name]()
    return rows


SCENARIOS = (
    "smoke",
    "target",
    "latency",
    "drain",
    "payload",
    "ladder",
    "cardinality",
    "tasks",
    "outage",
    "sharded",
    "relay",
    "kafka-latency",
)


def _per_device(args: argparse.Namespace, size: int) -> int:
    """Messages per device (of 1,000) for a payload step: ``--messages`` up to 1 KB, then fewer."""
    per: int = args.messages // 1000
    return max(1, per * 1024 // size if size > 1024 else per)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenario",
        choices=SCENARIOS,
    )
    parser.add_argument(
        "--warmup",
        type=float,
        default=None,
        metavar="SECONDS",
        help=f"target, latency, kafka-latency: offer the same load this long before measuring (default: "
        f"target {TARGET_WARMUP_S:.0f}, others 0)",
    )
    parser.add_argument(
        "--outage", type=float, default=60.0, help="outage scenario: seconds Kafka stays down (default 60)"
    )
    parser.add_argument("--messages", type=int, default=300_000, help="messages per run (default 300,000)")
    parser.add_argument("--rate", type=float, default=0.0, help="offered messages/s (scenario default)")
    parser.add_argument("--qos", type=int, default=1, choices=[1, 2], help="relay scenario: the route's QoS")
    parser.add_argument("--format", default="bytes", choices=["bytes", "json"], help="route value.format")
    parser.add_argument("--processes", type=int, default=2, help="generator processes (default 2)")
    parser.add_argument(
        "--producer",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="librdkafka producer setting for the bridge (kafka.producer.KEY), repeatable",
    )
    parser.add_argument(
        "--metrics", action="store_true", help="run the bridge with its metrics port on (/metrics, /healthz)"
    )
    parser.add_argument("--bootstrap", default="", help="use this Kafka instead of the local stack")
    parser.add_argument("--mqtt-uri", default="", help="use this MQTT broker instead of the local stack")
    args = parser.parse_args(argv)
    METRICS["on"] = args.metrics
    for item in args.producer:
        key, _, value = item.partition("=")
        PRODUCER_OVERRIDES[f"kafka.producer.{key}"] = value
    with tempfile.TemporaryDirectory() as tmp, brokers(args) as b:
        rows = scenarios(args, b, Path(tmp))
    print_table(rows)
    out = repo_root() / "loadtests" / "results"
    out.mkdir(exist_ok=True)
    (out / f"{args.scenario}-{int(time.time())}.json").write_text(
        json.dumps([asdict(r) for r in rows], indent=2)
    )
    return 0 if all(r.lost == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
