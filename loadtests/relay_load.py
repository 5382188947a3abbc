"""The ``relay`` scenario of ``loadtests/run.py``: commands out of Kafka, through ``run``, to a C subscriber.

    python -m loadtests.run relay --messages 100000 --qos 1
    python -m loadtests.run relay --qos 2 --rate 20000      # offered at 20,000/s instead of a backlog

Two runs on the same brokers, each to its own topic root, received by ``mosquitto_sub`` (the C
client, QoS 1: ``mosquitto_sub`` 2.0 ends a QoS 2 subscription from Mosquitto 2.0.11 after a few
dozen messages) printing each payload on a line:

``baseline``  ``mosquitto_pub -l`` (the C publisher, one message per stdin line, ``-M`` the relay's
              window) publishes the same commands (the simulator payloads, seq-major) at the same
              QoS straight into Mosquitto, one topic.
``relay``     the commands are produced into a 6-partition Kafka topic (keys ``p01.d0001``...),
              then ``mqtt-kafka-sync run`` (one task, started as users start it) relays them to
              ``<root>/plants/{plant}/devices/{device}/commands``.

Without ``--rate`` both are a backlog drained as fast as it goes; with it the baseline's lines are
written and the relay's commands produced at that rate. The rate of each is counted at the
subscriber, from its first command to its last; both are checked per device (payload ``device`` and
``seq``): lost, duplicated, out of order. The relay row has the task's CPU per command (its threads
and librdkafka's) over that span, the tree's RSS peak (``memory.py``), and each run the 1-minute
load average at its start and end.
"""

from __future__ import annotations

import json
import os
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from loadtests.memory import TreeMemory, print_tree, tree_pids
from loadtests.run import Brokers, Row, cpu_seconds, machine_cpu_seconds, print_budget
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.command_devices import Received, count_commands, produce_commands
from mqtt_kafka_sync.sim.payload import device_ids, make_payload, parse_payload
from tests.integration.worker_process import WorkerProcess

PARTITIONS = 6
WINDOW = 1000
"""``mosquitto_pub -M``: the relay's window against the local stack's Mosquitto (its Receive Maximum,
``max_inflight_messages``, 1000 since session 9); libmosquitto keeps to a smaller one a broker of your
own announces, as the relay does."""
PROBE = b"probe"
TIMEOUT_S = 600.0
IDLE_S = 20.0
"""A run ends this long after its last command when some are still missing (then counted lost)."""


def relay_settings(
    bootstrap: str, mqtt_uri: str, topic: str, root: str, qos: int, **extra: str
) -> dict[str, str]:
    """A one-route relay connector: ``topic`` (keys ``{plant}.{device}``) to ``<root>/plants/...``."""
    return {
        "connector.class": "mqtt_kafka_sync.KafkaCommandRelayConnector",
        "mqtt.server.uri": mqtt_uri,
        "kafka.bootstrap.servers": bootstrap,
        "routes": "cmd",
        "routes.cmd.kafka.topic": topic,
        "routes.cmd.kafka.key": "{plant}.{device}",
        "routes.cmd.mqtt.topic": f"{root}/plants/{{plant}}/devices/{{device}}/commands",
        "routes.cmd.mqtt.qos": str(qos),
        "errors.deadletterqueue.topic.name": f"{topic}-dlq",
        **extra,
    }


class Subscriber:
    """``mosquitto_sub`` on ``<root>/#`` printing payloads; a thread keeps every line with the
    monotonic time of the first and the latest command. Ready once a probe published to it arrived."""

    def __init__(self, host: str, port: int, root: str) -> None:
        self.host, self.port, self.root = host, port, root
        self.lines: list[bytes] = []
        self.first = self.last = 0.0
        self.ready = threading.Event()
        command = ["mosquitto_sub", "-V", "mqttv5", "-h", host, "-p", str(port), "-q", "1"]
        self._process = subprocess.Popen([*command, "-t", f"{root}/#", "-F", "%p"], stdout=subprocess.PIPE)
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        """Whole reads of the pipe, split into lines: read line by line, this thread took a fifth of
        a core at 17,000 commands/s, from the two cores the relay and Mosquitto share."""
        assert self._process.stdout is not None
        fd, lines, rest = self._process.stdout.fileno(), self.lines, b""
        while chunk := os.read(fd, 1 << 20):
            now = time.monotonic()
            taken = (rest + chunk).split(b"\n")
            rest = taken.pop()
            if PROBE in chunk:
                self.ready.set()
                taken = [line for line in taken if not line.startswith(PROBE)]
            if taken:
                if not lines:
                    self.first = now
                lines += taken
                self.last = now

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.is_set():
            if time.monotonic() > deadline:
                raise SystemExit(f"mosquitto_sub on {self.root}/# got no probe in {timeout:.0f}s")
            _pub(self.host, self.port, ["-t", f"{self.root}/probe", "-m", PROBE.decode()])
            self.ready.wait(0.3)

    def wait_for(self, total: int, timeout: float, idle: float = IDLE_S) -> bool:
        """Until ``total`` commands arrived (True), ``timeout`` passed or none came for ``idle`` s
        (after the first)."""
        deadline = time.monotonic() + timeout
        while len(self.lines) < total and time.monotonic() < deadline:
            if self.lines and time.monotonic() - self.last > idle:
                break
            time.sleep(0.005)
        return len(self.lines) >= total

    def rate(self) -> float:
        span = self.last - self.first
        return (len(self.lines) - 1) / span if span > 0 and len(self.lines) > 1 else 0.0

    def report(self, expected: dict[str, int]) -> dict[str, int]:
        """Stop; lost, duplicated and out-of-order commands per device, summed."""
        self._process.terminate()
        self._process.wait(10)
        self._thread.join(10)
        assert self._process.stdout is not None
        self._process.stdout.close()
        received: dict[str, list[Received]] = {}
        for line in self.lines:
            device, seq, _ = parse_payload(line)
            received.setdefault(device, []).append(Received(seq, device, "", 1, False, {}, None, None, None))
        counts = count_commands(received, expected)
        return {
            "received": len(self.lines),
            "lost": counts.lost,
            "duplicated": counts.duplicated,
            "out_of_order": counts.out_of_order,
            "foreign": counts.foreign,
        }


def _pub(host: str, port: int, args: list[str]) -> None:
    subprocess.run(
        ["mosquitto_pub", "-V", "mqttv5", "-h", host, "-p", str(port), *args], check=True, timeout=30
    )


def _load() -> float:
    return round(os.getloadavg()[0], 2)


def _paced_write(sink: IO[bytes], lines: list[bytes], rate: float) -> None:
    """Write ``lines`` to ``sink`` at ``rate`` lines/s (all at once when 0), in 10 ms slices."""
    step = len(lines) if rate <= 0 else max(1, round(rate / 100))
    began = time.monotonic()
    for start in range(0, len(lines), step):
        if rate > 0 and (ahead := began + start / rate - time.monotonic()) > 0:
            time.sleep(ahead)
        sink.write(b"".join(lines[start : start + step]))
    sink.flush()


@dataclass(frozen=True)
class RelayLoad:
    devices: list[str]
    per_device: int
    qos: int
    rate: float
    """Commands/s offered; 0: a backlog, drained as fast as it goes."""
    size: int

    @property
    def total(self) -> int:
        return self.per_device * len(self.devices)

    @property
    def expected(self) -> dict[str, int]:
        return dict.fromkeys(self.devices, self.per_device)


def baseline_run(b: Any, load: RelayLoad) -> dict[str, Any]:
    """``mosquitto_pub -l`` -> Mosquitto -> ``mosquitto_sub``: the same commands, no Kafka, no bridge."""
    root, qos = f"b{uuid.uuid4().hex[:6]}", load.qos
    lines = [
        make_payload(d, seq, load.size) + b"\n" for seq in range(1, load.per_device + 1) for d in load.devices
    ]
    sub = Subscriber(b.mqtt_host, b.mqtt_port, root)
    sub.wait_ready()
    load0 = _load()
    command = ["mosquitto_pub", "-V", "mqttv5", "-h", b.mqtt_host, "-p", str(b.mqtt_port), "-q", str(qos)]
    pub = subprocess.Popen(
        [*command, "-M", str(WINDOW), "-t", f"{root}/baseline", "-l"], stdin=subprocess.PIPE
    )
    assert pub.stdin is not None
    writer = threading.Thread(target=_paced_write, args=(pub.stdin, lines, load.rate), daemon=True)
    broker = [b.mqtt_pid] if b.mqtt_pid else []
    machine0, mosquitto0 = machine_cpu_seconds(), cpu_seconds(broker)
    writer.start()
    sub.wait_for(len(lines), TIMEOUT_S)
    cpu = cpu_seconds([pub.pid])
    parts = {"mosquitto_pub": cpu, **({"mosquitto": cpu_seconds(broker) - mosquitto0} if broker else {})}
    print_budget("baseline", len(lines), machine_cpu_seconds() - machine0, parts)
    writer.join(30)
    # stdin closes only now: at its end mosquitto_pub -l disconnects once the packet id of the last
    # line is acknowledged, and packet ids wrap at 65,535 (an earlier line's PUBACK would end it).
    pub.stdin.close()
    pub.wait(30)
    return {
        "rate": sub.rate(),
        "us_per_msg": 1e6 * cpu / len(lines),
        "load": (load0, _load()),
        **sub.report(load.expected),
    }


def relay_run(b: Any, load: RelayLoad, workdir: Path) -> dict[str, Any]:
    """Commands in Kafka -> ``mqtt-kafka-sync run`` (one relay task) -> Mosquitto -> ``mosquitto_sub``."""
    qos, rate = load.qos, load.rate
    tag = uuid.uuid4().hex[:6]
    topic, root = f"relay-load-{tag}", f"r{tag}"
    total = load.total
    ensure_topics(b.kafka_bootstrap, [topic, f"{topic}-dlq"], partitions=PARTITIONS)
    produce: Callable[[], object] = lambda: produce_commands(  # noqa: E731
        b.kafka_bootstrap, topic, load.devices, load.per_device, payload_size=load.size, rate=rate or None
    )
    if not rate:
        produce()  # a backlog: the relay drains it as fast as it goes
    sub = Subscriber(b.mqtt_host, b.mqtt_port, root)
    sub.wait_ready()
    config = workdir / f"relay-{tag}.json"
    settings = relay_settings(b.kafka_bootstrap, b.mqtt_uri, topic, root, qos, **{"tasks.max": "1"})
    config.write_text(json.dumps({"name": f"relay-{tag}", "config": settings}))
    load0 = _load()
    worker = WorkerProcess(config, workdir, f"relay-{tag}").start()
    assert worker.proc is not None
    memory = TreeMemory(worker.proc.pid, worker.task_pids).start()
    producer = threading.Thread(target=produce, daemon=True)
    if rate:
        worker.wait_subscribed()
        producer.start()
    while not sub.lines and worker.alive():
        time.sleep(0.002)
    brokers = {name: pid for name, pid in (("mosquitto", b.mqtt_pid), ("kafka", b.kafka_pid)) if pid}
    cpu0 = _tree_cpu(worker.proc.pid)  # the status file names the task within a second: too late here
    machine0, brokers0 = machine_cpu_seconds(), {name: cpu_seconds([p]) for name, p in brokers.items()}
    sub.wait_for(total, TIMEOUT_S)
    cpu1 = _tree_cpu(worker.proc.pid)
    machine = machine_cpu_seconds() - machine0
    pids = _task_pids(worker)
    task = sum(cpu1.get(p, 0.0) - cpu0.get(p, 0.0) for p in pids)
    parts = {"task": task, **{name: cpu_seconds([p]) - brokers0[name] for name, p in brokers.items()}}
    print_budget("relay", total, machine, parts)
    acked = worker.wait_acked(total, 60)
    tree = memory.stop()
    if rate:
        producer.join(60)
    code = worker.stop()
    print_tree(f"relay qos {qos}, under load", tree)
    return {
        "rate": sub.rate(),
        "us_per_msg": 1e6 * task / total,
        "load": (load0, _load()),
        "tree": tree,
        "task_peak_rss_mb": max(
            (p["peak_rss_mb"] for p in tree["processes"] if p["role"] == "task"), default=0.0
        ),
        "acked_all": acked,
        "exit_code": code,
        **sub.report(load.expected),
    }


def _tree_cpu(root: int) -> dict[int, float]:
    """CPU seconds of every process in ``root``'s tree, by pid."""
    return {pid: cpu_seconds([pid]) for pid in tree_pids(root)}


def _task_pids(worker: WorkerProcess, timeout: float = 60.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while not (pids := worker.task_pids()):
        if time.monotonic() > deadline or not worker.alive():
            raise SystemExit(f"the relay's task process did not start:\n{worker.log()}")
        time.sleep(0.01)
    return pids


def relay_rows(
    b: Brokers, workdir: Path, *, messages: int, qos: int, rate: float, size: int = 120
) -> list[Row]:
    """The baseline, then the relay, on the same brokers: one row, both figures in it."""
    devices = device_ids(1000 if messages >= 1000 else max(1, messages // 10))
    load = RelayLoad(devices, max(1, messages // len(devices)), qos, rate, size)
    total = load.total
    base = baseline_run(b, load)
    relay = relay_run(b, load, workdir)
    print(
        f"[relay] qos {qos}, {total:,} commands, {len(devices):,} devices, {size} B, "
        f"{'offered at ' + format(rate, ',.0f') + '/s' if rate else 'a backlog'}:\n"
        f"  baseline mosquitto_pub: {base['rate']:,.0f} msg/s, {base['us_per_msg']:.1f} us CPU/msg, "
        f"lost {base['lost']} dup {base['duplicated']} ooo {base['out_of_order']}, "
        f"load {base['load'][0]} -> {base['load'][1]}\n"
        f"  relay (run, 1 task):    {relay['rate']:,.0f} commands/s, "
        f"ratio {relay['rate'] / base['rate']:.2f}, "
        f"{relay['us_per_msg']:.1f} us CPU/command, lost {relay['lost']} dup {relay['duplicated']} "
        f"ooo {relay['out_of_order']}, tree peak {relay['tree']['tree_peak_rss_mb']} MB, "
        f"load {relay['load'][0]} -> {relay['load'][1]}"
    )
    lost = relay["lost"] + relay["foreign"] + (0 if relay["acked_all"] and relay["exit_code"] == 0 else 1)
    return [
        Row(
            "relay",
            f"qos{qos} {'backlog' if not rate else 'paced'}",
            rate,
            total,
            baseline_rate=base["rate"],
            bridge_rate=relay["rate"],
            lost=lost + base["lost"],
            duplicated=relay["duplicated"],
            out_of_order=relay["out_of_order"] + base["out_of_order"],
            bridge_us_per_msg=relay["us_per_msg"],
            bridge_peak_rss_mb=relay["task_peak_rss_mb"],
            tree_peak_rss_mb=relay["tree"]["tree_peak_rss_mb"],
            extra={
                "baseline": base,
                "relay": {k: v for k, v in relay.items() if k != "tree"},
                "memory": relay["tree"],
            },
        )
    ]
