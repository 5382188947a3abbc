"""Command relay throughput: Kafka backlog -> MQTT publishes acknowledged by the broker, per QoS.

    python -m loadtests.relay_bench                     # 50,000 commands, 1,000 devices, QoS 1 and 2
    python -m loadtests.relay_bench --commands 100000 --qos 1
    python -m loadtests.relay_bench --bootstrap HOST:PORT --mqtt-uri tcp://HOST:PORT
    python -m loadtests.relay_bench --publisher-only    # the MQTT publisher alone, no Kafka

For each QoS: a fresh 6-partition command topic is filled with ``--commands`` commands (keys
``p01.d0001``..., simulator payloads of ``--payload-size`` bytes), then one relay task drains it, as
a task process runs it (its own thread; the garbage collector tuned the same way). The figure is
commands from the first record read to the last offset stored, per second: every command in it was
acknowledged by the broker (PUBACK, or PUBCOMP for QoS 2) before its offset was stored. A
``mosquitto_sub`` (``<root>/#`` at QoS 1, standing in for the devices) counts what the broker
delivered, so the run also shows nothing was lost. (Until issue 16 a paho subscriber counted; on a
busy 2-core machine it took a core and held the broker's delivery back, so it measured itself.)

``--publisher-only`` measures the relay's MQTT publisher (``mqtt/publisher.py``) alone: the same
commands published from one thread as fast as the window allows (``min(mqtt.max.inflight.messages``
default, the broker's Receive Maximum)``), from the first publish to the last acknowledgement; the
relay's own work (Kafka, routing, offsets) is left out, so the figure is the publisher's ceiling.

Brokers: the local stack under ``.stack-load/`` on ports the OS picks (started and stopped here), or
``--bootstrap`` and ``--mqtt-uri``.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import logging
import os
import pstats
import queue
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from loadtests.relay_load import relay_settings
from loadtests.run import brokers
from mqtt_kafka_sync.config.loader import load_connector
from mqtt_kafka_sync.config.model import RELAY_MQTT_MAX_INFLIGHT, RelayConnectorConfig
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.mqtt.events import Acked, Acks, Connected, take_events
from mqtt_kafka_sync.mqtt.publisher import Command, MqttPublisher, PublisherSettings
from mqtt_kafka_sync.relay.worker import RelayWorker
from mqtt_kafka_sync.runtime.task_process import _tune_gc
from mqtt_kafka_sync.sim.command_devices import produce_commands
from mqtt_kafka_sync.sim.payload import device_ids

PARTITIONS = 6


class Counter:
    """``mosquitto_sub`` (the C client, so counting takes little of the machine) subscribed to
    ``<root>/#``, standing in for the devices: counts every PUBLISH the broker delivered (its debug
    lines, read on a thread)."""

    def __init__(self, host: str, port: int, topic_filter: str, qos: int) -> None:
        command = ["stdbuf", "-oL", "mosquitto_sub", "-d", "-V", "mqttv5", "-h", host, "-p", str(port)]
        # QoS 1 at most: mosquitto_sub 2.0 ends a QoS 2 subscription with "A network protocol
        # error occurred" after some dozens of messages from Mosquitto 2.0.11 (seen here); QoS 1
        # still delivers each command at least once, so the count still shows none was lost.
        command += ["-t", topic_filter, "-q", str(min(qos, 1)), "-F", "%t"]
        self.value = 0
        self.ready = threading.Event()
        self._process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            if "received PUBLISH" in line:
                self.value += 1
            elif "received SUBACK" in line:
                self.ready.set()

    def stop(self) -> None:
        self._process.terminate()
        self._process.wait(10)
        self._thread.join(10)


def _cpu() -> float:
    """CPU seconds of this process (the relay task's threads and librdkafka's), user + system."""
    times = os.times()
    return times.user + times.system


def run_one(
    args: argparse.Namespace, bootstrap: str, mqtt_host: str, mqtt_port: int, qos: int
) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    topic, root = f"bench-commands-{tag}", f"bench{tag}"
    ensure_topics(bootstrap, [topic, f"{topic}-dlq"], partitions=PARTITIONS)
    devices = device_ids(args.devices)
    per_device = max(1, args.commands // len(devices))
    total = per_device * len(devices)
    began = time.monotonic()
    produce_commands(bootstrap, topic, devices, per_device, payload_size=args.payload_size)
    print(f"  qos {qos}: {total:,} commands in Kafka ({time.monotonic() - began:.1f}s)", file=sys.stderr)

    count = Counter(mqtt_host, mqtt_port, f"{root}/#", qos)
    if not count.ready.wait(30):
        raise SystemExit("the counting subscriber did not subscribe")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "relay.json"
        uri = f"tcp://{mqtt_host}:{mqtt_port}"
        settings = relay_settings(bootstrap, uri, topic, root, qos)
        path.write_text(json.dumps({"name": f"bench-{tag}", "config": settings}))
        config = load_connector(path, os.environ)
    assert isinstance(config, RelayConnectorConfig)
    worker = RelayWorker(config, 0)
    _tune_gc()
    if args.profile:
        _profiled(worker, total, args)
        count.stop()
        return {"qos": qos, "commands": total, "seconds": 0, "commands_per_s": 0, "relay_cpu_cores": None,
                "delivered_to_subscriber": count.value, "dead_lettered": 0, "complete": True}  # fmt: skip
    worker.start()
    first = last = 0.0
    cpu_first = cpu_last = 0.0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        snap = worker.snapshot()
        now = time.monotonic()
        if not first and snap["received"]:
            first, cpu_first = now, _cpu()
        if snap["acked"] >= total:
            last, cpu_last = now, _cpu()
            break
        time.sleep(0.005)
    snap = worker.snapshot()
    worker.drain(10)
    delivered_deadline = time.monotonic() + 10
    while count.value < total and time.monotonic() < delivered_deadline:
        time.sleep(0.05)
    count.stop()
    stats = worker.task.stats
    elapsed = (last or time.monotonic()) - first
    return {
        "qos": qos,
        "commands": total,
        "payload_bytes": args.payload_size,
        "devices": len(devices),
        "acked": snap["acked"],
        "seconds": round(elapsed, 2),
        "commands_per_s": round(snap["acked"] / elapsed) if elapsed > 0 else 0,
        "relay_cpu_cores": round((cpu_last - cpu_first) / elapsed, 2) if last and elapsed > 0 else None,
        "delivered_to_subscriber": count.value,
        "dead_lettered": stats.dead_lettered,
        "republished": stats.republished,
        "complete": bool(last),
    }


def _profiled(worker: RelayWorker, total: int, args: argparse.Namespace) -> None:
    """``--profile``: the relay loop on this thread under cProfile until every offset is stored;
    prints the top functions by own and by cumulative time (slower than unprofiled: no figures)."""
    worker.task.start()
    profile = cProfile.Profile()
    deadline = time.monotonic() + args.timeout
    profile.enable()
    while worker.task.tracker.finished < total and time.monotonic() < deadline:
        worker.task.step()
    profile.disable()
    worker.task.drain(10)
    for order in ("tottime", "cumulative"):
        pstats.Stats(profile).sort_stats(order).print_stats(args.profile)


def publisher_run(args: argparse.Namespace, mqtt_host: str, mqtt_port: int, qos: int) -> dict[str, Any]:
    """``--publisher-only``: the publisher and its acknowledgements, nothing else (see the docstring)."""
    root = f"bench{uuid.uuid4().hex[:8]}"
    count = Counter(mqtt_host, mqtt_port, f"{root}/#", qos)
    if not count.ready.wait(30):
        raise SystemExit("the counting subscriber did not subscribe")
    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    publisher = MqttPublisher(PublisherSettings(mqtt_host, mqtt_port, f"bench-{root}"), events)
    publisher.start()
    connected = events.get(timeout=30)
    assert isinstance(connected, Connected), connected
    window = min(RELAY_MQTT_MAX_INFLIGHT, connected.receive_maximum)
    devices = device_ids(args.devices)
    commands = [
        Command("cmd", f"{root}/plants/p01/devices/{d}/commands", b"x" * args.payload_size, qos, False,
                (("site", "bench"),), f"commands/0/{n}".encode(), None, None)
        for n, d in enumerate(devices)
    ]  # fmt: skip
    total, sent, acked, refused = args.commands, 0, 0, 0
    began, cpu_began = time.monotonic(), _cpu()
    while acked + refused < total:
        while sent - acked - refused < window and sent < total:
            publisher.publish(commands[sent % len(commands)])
            sent += 1
        for event in take_events(events, 5.0):
            if isinstance(event, Acks):
                acked += len(event.mids)
            elif isinstance(event, Acked):
                acked += event.reason_code < 0x80
                refused += event.reason_code >= 0x80
    elapsed, cpu = time.monotonic() - began, _cpu() - cpu_began
    publisher.stop(end_session=True)
    delivered_deadline = time.monotonic() + 10
    while count.value < total and time.monotonic() < delivered_deadline:
        time.sleep(0.05)
    count.stop()
    return {
        "qos": qos,
        "commands": total,
        "payload_bytes": args.payload_size,
        "devices": len(devices),
        "acked": acked,
        "seconds": round(elapsed, 2),
        "commands_per_s": round(acked / elapsed),
        "relay_cpu_cores": round(cpu / elapsed, 2),
        "delivered_to_subscriber": count.value,
        "dead_lettered": refused,
        "republished": 0,
        "complete": acked == total,
        "window": window,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--commands", type=int, default=50_000)
    parser.add_argument("--devices", type=int, default=1_000)
    parser.add_argument("--payload-size", type=int, default=120)
    parser.add_argument("--qos", type=int, nargs="+", choices=(1, 2), default=[1, 2])
    parser.add_argument("--timeout", type=float, default=300.0, help="per QoS (default %(default)s s)")
    parser.add_argument("--bootstrap", help="Kafka of your own (with --mqtt-uri)")
    parser.add_argument("--mqtt-uri", help="MQTT broker of your own, tcp://host:port")
    parser.add_argument(
        "--profile", type=int, default=0, metavar="N", help="run the relay loop under cProfile, print N lines"
    )
    parser.add_argument("--publisher-only", action="store_true", help="the MQTT publisher alone, no Kafka")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("librdkafka").setLevel(logging.ERROR)
    with brokers(args) as found:
        if args.publisher_only:
            results = [publisher_run(args, found.mqtt_host, found.mqtt_port, q) for q in args.qos]
        else:
            results = [
                run_one(args, found.kafka_bootstrap, found.mqtt_host, found.mqtt_port, q) for q in args.qos
            ]
    print(
        f"{'QoS':>3} {'commands':>9} {'seconds':>8} {'commands/s':>11} {'relay CPU':>9} "
        f"{'delivered':>10} {'dlq':>4}"
    )
    for r in results:
        print(
            f"{r['qos']:>3} {r['commands']:>9,} {r['seconds']:>8.2f} {r['commands_per_s']:>11,} "
            f"{r['relay_cpu_cores'] or 0:>9.2f} {r['delivered_to_subscriber']:>10,} {r['dead_lettered']:>4}"
        )
    print(json.dumps(results))
    return 0 if all(r["complete"] and r["delivered_to_subscriber"] >= r["commands"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
