"""Reconnect burst: a site's gateways come back and flush a backlog at once; a slower consumer group
reads the Kafka topic. Prints the group's lag curve and the drain time, with the throttle and,
with ``--compare``, without it.

    python -m loadtests.reconnect_burst                          # 300,000 messages, consumer 5,000/s
    python -m loadtests.reconnect_burst --messages 100000 --consumer-rate 1500 --lag-high 20000 --compare
    python -m loadtests.reconnect_burst --bootstrap 127.0.0.1:19092 --mqtt-uri tcp://127.0.0.1:11883

The backlog is queued on the broker while the worker is away (its persistent session keeps it), then
the real ``mqtt-kafka-sync run`` starts and drains it. Lag is the group's total lag on the topic,
read through the admin API every ``--sample`` seconds (commit-based: up to one commit interval of
consumption above the true lag). Brokers: as in ``loadtests.run``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from loadtests.publisher import LoadSpec, generate
from loadtests.run import Brokers, brokers
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.payload import device_ids
from mqtt_kafka_sync.sim.verify import verify_topic
from tests.integration.paced_consumer import LagProbe, PacedConsumer
from tests.integration.worker_process import WorkerProcess, write_source_config

DEVICES = 1000
BAR_WIDTH = 50


@dataclass
class Curve:
    label: str
    points: list[tuple[float, int, int]] = field(default_factory=list)
    """(seconds since the worker started, group lag, messages acknowledged)."""
    drained_at: float | None = None
    lost: int = 0
    duplicated: int = 0

    @property
    def peak(self) -> int:
        return max((lag for _t, lag, _a in self.points), default=0)


def burst(b: Brokers, args: argparse.Namespace, workdir: Path, *, throttled: bool) -> Curve:
    tag = uuid.uuid4().hex[:6]
    root, topic, group = f"rb{tag}", f"burst-{tag}", f"historian-{tag}"
    ensure_topics(b.kafka_bootstrap, [topic, f"{topic}-dlq"], partitions=6)
    extra: dict[str, Any] = {"mqtt.takeover.enabled": "false", "mqtt.receive.maximum": args.receive_maximum}
    if throttled:
        extra |= {
            "throttle.lag.groups": group,
            "throttle.lag.high": args.lag_high,
            "throttle.rate.min": args.rate_min,
            "throttle.lag.interval.seconds": args.interval,
        }
        if args.step:
            extra["throttle.step.max"] = args.step
    config = write_source_config(
        workdir / f"{tag}.json", b, name=f"burst-{tag}", root=root, topic=topic, **extra
    )
    worker = WorkerProcess(config, workdir, f"first-{tag}").start()
    worker.wait_subscribed()
    if worker.stop() != 0:
        raise SystemExit(f"worker did not stop cleanly:\n{worker.log()}")
    per_device = max(1, args.messages // DEVICES)
    total = per_device * DEVICES
    spec = LoadSpec(
        b.mqtt_host,
        b.mqtt_port,
        f"{root}/plants/{{plant}}/devices/{{device}}/telemetry",
        DEVICES,
        per_device,
        60_000,
    )
    print(f"[{'throttled' if throttled else 'unthrottled'}] queueing {total:,} messages on the broker...")
    generate(spec)
    reader = PacedConsumer(b.kafka_bootstrap, topic, group, args.consumer_rate, commit_ms=args.commit_ms)
    lag = LagProbe(b.kafka_bootstrap, group, topic)
    curve = Curve("throttled" if throttled else "unthrottled")
    worker = WorkerProcess(config, workdir, f"drain-{tag}").start()
    try:
        start = time.monotonic()
        while time.monotonic() - start < args.timeout:
            acked = worker.totals().get("acked", 0)
            curve.points.append((time.monotonic() - start, lag.read(), acked))
            if acked >= total and curve.drained_at is None:
                curve.drained_at = time.monotonic() - start
            if curve.drained_at is not None and reader.consumed >= total:
                break
            time.sleep(args.sample)
    finally:
        worker.stop()
        reader.close()
        lag.close()
    report = verify_topic(
        b.kafka_bootstrap,
        topic,
        dict.fromkeys(device_ids(DEVICES), per_device),
        timeout_s=300,
        idle_s=20,
        topic_template=spec.topic_template,
    )
    curve.lost, curve.duplicated = report.lost, report.duplicated
    return curve


def print_curve(curve: Curve, args: argparse.Namespace) -> None:
    scale = max(curve.peak, args.lag_high, 1)
    print(f"\n{curve.label}: group lag (| = throttle.lag.high {args.lag_high:,})")
    print(f"{'t (s)':>7}  {'lag':>9}  {'acked':>9}")
    mark = round(BAR_WIDTH * args.lag_high / scale)
    every = max(1, round(1.0 / args.sample))
    for t, lag, acked in curve.points[::every]:
        bar = list(("#" * round(BAR_WIDTH * lag / scale)).ljust(BAR_WIDTH + 1))
        if mark <= BAR_WIDTH:
            bar[mark] = "|"
        print(f"{t:7.1f}  {lag:9,}  {acked:9,}  {''.join(bar)}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m loadtests.reconnect_burst",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=300_000, help="backlog size (default 300,000)")
    parser.add_argument(
        "--consumer-rate", type=float, default=5000.0, help="the group's records/s (default 5,000)"
    )
    parser.add_argument(
        "--commit-ms", type=int, default=500, help="the group's auto-commit interval (default 500)"
    )
    parser.add_argument("--lag-high", type=int, default=50_000, help="throttle.lag.high (default 50,000)")
    parser.add_argument("--rate-min", type=float, default=1000.0, help="throttle.rate.min (default 1,000)")
    parser.add_argument(
        "--step", type=float, default=0.0, help="throttle.step.max (default: the key's default)"
    )
    parser.add_argument(
        "--interval", type=float, default=1.0, help="throttle.lag.interval.seconds (default 1)"
    )
    parser.add_argument("--receive-maximum", type=int, default=500, help="mqtt.receive.maximum (default 500)")
    parser.add_argument(
        "--sample", type=float, default=0.5, help="seconds between lag readings (default 0.5)"
    )
    parser.add_argument("--timeout", type=float, default=900.0, help="give up after this many seconds")
    parser.add_argument("--compare", action="store_true", help="run the same burst unthrottled first")
    parser.add_argument("--bootstrap", default="", help="use this Kafka instead of the local stack")
    parser.add_argument("--mqtt-uri", default="", help="use this MQTT broker instead of the local stack")
    args = parser.parse_args(argv)
    curves: list[Curve] = []
    with tempfile.TemporaryDirectory() as tmp, brokers(args) as b:
        if args.compare:
            curves.append(burst(b, args, Path(tmp), throttled=False))
        curves.append(burst(b, args, Path(tmp), throttled=True))
    for curve in curves:
        print_curve(curve, args)
    print(f"\n{'run':<12} {'drain (s)':>10} {'lag peak':>10} {'vs high':>8} {'lost':>6} {'dup':>6}")
    for curve in curves:
        drain = f"{curve.drained_at:.1f}" if curve.drained_at is not None else "timeout"
        print(
            f"{curve.label:<12} {drain:>10} {curve.peak:>10,} {curve.peak / args.lag_high:>7.0%} "
            f"{curve.lost:>6,} {curve.duplicated:>6,}"
        )
    ok = all(c.lost == 0 and c.drained_at is not None for c in curves)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
