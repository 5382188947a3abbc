"""``mqtt-kafka-sync demo``: the whole path on the local stack, with live progress.

Starts Kafka and Mosquitto (``stack up``), creates the example topics, runs the example connector
(``connectors/example-telemetry.json``) and a device simulator, and prints messages in and out per
second. Ctrl-C stops the devices first, lets the worker catch up and drain, then reads the Kafka
topic back and reports lost, duplicated and out-of-order messages per device.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

EXAMPLE_CONFIG = "connectors/example-telemetry.json"


def register(subparsers: Any) -> None:
    demo = subparsers.add_parser(
        "demo", help="local stack + worker + device simulator, live progress until Ctrl-C"
    )
    demo.add_argument("--config", default=None, help=f"connector config (default {EXAMPLE_CONFIG})")
    demo.add_argument("--devices", type=int, default=200, help="simulated devices (default 200)")
    demo.add_argument(
        "--rate", type=float, default=1000.0, help="messages per second, all devices (default 1000)"
    )
    demo.add_argument(
        "--seconds", type=float, default=0.0, help="stop by itself after this long (default: Ctrl-C)"
    )
    demo.add_argument(
        "--keep-stack", action="store_true", help="leave Kafka and Mosquitto running afterwards"
    )
    demo.set_defaults(func=cmd_demo)


class _Progress:
    def __init__(self, simulator: Any, tasks: int) -> None:
        self.simulator = simulator
        self.tasks = tasks
        self.started = False
        self.last: tuple[float, int, int] = (time.monotonic(), 0, 0)
        self.tty = sys.stdout.isatty()

    def tick(self, supervisor: Any) -> None:
        totals = supervisor.totals()
        if not self.started and totals["subscribed"] >= self.tasks:
            self.simulator.start()
            self.started = True
            print(f"worker subscribed; {len(self.simulator.device_ids)} devices publishing. Ctrl-C to stop.")
        now = time.monotonic()
        then, received_then, produced_then = self.last
        dt = max(now - then, 1e-6)
        sent = self.simulator.acked if self.started else 0
        received, produced = totals["received"], totals["produced"]
        line = (
            f"devices sent {sent:>9,} | mqtt in {received:>9,} ({(received - received_then) / dt:>7,.0f}/s)"
            f" | kafka out {produced:>9,} ({(produced - produced_then) / dt:>7,.0f}/s)"
            f" | dead-lettered {totals['dead_lettered']:,} | acked {totals['acked']:,}"
        )
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n", flush=True)
        self.last = (now, totals["received"], totals["produced"])


def cmd_demo(args: argparse.Namespace) -> int:
    from mqtt_kafka_sync.config.loader import load_connectors  # noqa: PLC0415
    from mqtt_kafka_sync.devstack.paths import example_connector  # noqa: PLC0415
    from mqtt_kafka_sync.devstack.stack import LocalStack  # noqa: PLC0415
    from mqtt_kafka_sync.kafka.admin import ensure_topics  # noqa: PLC0415
    from mqtt_kafka_sync.runtime.supervisor import Supervisor  # noqa: PLC0415
    from mqtt_kafka_sync.signals import stop_on_signals  # noqa: PLC0415
    from mqtt_kafka_sync.sim.devices import DeviceSimulator  # noqa: PLC0415
    from mqtt_kafka_sync.sim.verify import verify_topic  # noqa: PLC0415

    config_path = Path(args.config) if args.config else example_connector()
    [config] = load_connectors([config_path], os.environ)
    stack = LocalStack()
    was_running = stack.status().healthy
    print(
        "starting Kafka and Mosquitto (first run downloads Kafka's jars through Maven)..."
        if not was_running
        else "local stack already running"
    )
    stack.up()
    print(f"kafka {stack.kafka_bootstrap}, mqtt {stack.mqtt_uri}")
    topics = [r.kafka_topic for r in config.routes if "{" not in r.kafka_topic] + [config.dlq_topic]
    ensure_topics(stack.kafka_bootstrap, topics)
    telemetry_topic = config.routes[0].kafka_topic
    since_ms = int(time.time() * 1000)

    simulator = DeviceSimulator(
        stack.mqtt_host,
        stack.mqtt_port,
        args.devices,
        10_000_000,
        rate=args.rate,
        client_id_prefix=f"demo-devices-{os.getpid()}",
    )
    supervisor = Supervisor([config])
    progress = _Progress(simulator, config.tasks_max)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    asked, stopping = threading.Event(), threading.Event()  # asked: Ctrl-C or the --seconds deadline

    def on_tick(sup: Supervisor) -> None:
        progress.tick(sup)
        if deadline is not None and time.monotonic() >= deadline:
            asked.set()
        if asked.is_set() and not stopping.is_set():
            stopping.set()
            _stop_devices_then_worker(sup, simulator)

    with stop_on_signals(asked, (signal.SIGINT,)):  # Ctrl-C stops the devices, then the worker
        try:
            supervisor.run(on_tick=on_tick, handle_signals=False)
            print()
            if not progress.started:
                return 0
            result = simulator.stop()
            print(f"devices: {result.summary()}")
            report = verify_topic(
                stack.kafka_bootstrap,
                telemetry_topic,
                result.per_device_last_seq,
                timeout_s=60,
                idle_s=10,
                since_ms=since_ms,
            )
            print(f"kafka:   {report.summary()}")
            return 0 if report.ok_allowing_reorder else 1
        finally:
            if simulator.running:
                simulator.stop()
            if not args.keep_stack and not was_running:
                stack.down()
                print("local stack stopped (use --keep-stack to leave it running)")


def _stop_devices_then_worker(supervisor: Any, simulator: Any) -> None:
    print("\nstopping devices, letting the worker catch up...")
    result = simulator.stop()
    wait_until = time.monotonic() + 30
    while time.monotonic() < wait_until and supervisor.totals()["acked"] < result.acked:
        time.sleep(0.2)
    supervisor.request_stop()
