"""Sharded mode end to end: MQTT sessions owned by shards, shards owned by workers through a Kafka group.

Every worker is a real ``mqtt-kafka-sync run`` process on the same connector file (tasks.max=1),
as an operator would start them on three machines. The devices number their messages; the Kafka
topic is read back and lost, duplicated and out-of-order messages are counted per device (out of
order: first occurrences only, so a re-sent duplicate is not a reorder).
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from mqtt_kafka_sync.devstack.ports import free_ports
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from tests.integration.tcp_proxy import TcpProxy
from tests.integration.test_ingest import Scenario
from tests.integration.worker_process import WorkerProcess, write_source_config

pytestmark = pytest.mark.integration

PLANTS = 6
PREFIX = "coordination-"


class ShardedScenario(Scenario):
    """test_ingest's scenario (its own topic root, Kafka topics, names) as a sharded connector:
    shard ``i`` is plant ``i``, and the devices are spread over the plants."""

    def __init__(self, brokers: Any, tmp_path: Path, *, mode: str = "sharded", **config: Any) -> None:
        """``mode="shared"``: the same connector in shared mode (one shared subscription), to compare."""
        super().__init__(brokers, tmp_path, **config)
        self.shards = [f"{self.root}/plants/p{i:02d}/#" for i in range(1, PLANTS + 1)]
        if mode == "sharded":
            sharded = {
                "mqtt.topics": "",
                "mqtt.subscription": "sharded",
                "mqtt.shards": ",".join(self.shards),
            }
            self.config = write_source_config(
                tmp_path / f"{self.name}-sharded.json",
                brokers,
                name=self.name,
                root=self.root,
                topic=self.topic,
                **{**sharded, **config},
            )

    def simulator(self, devices: int, per_device: int, **kwargs: Any) -> DeviceSimulator:
        return super().simulator(devices, per_device, plants=PLANTS, **kwargs)


def owned(worker: WorkerProcess) -> list[str]:
    """The shards ``worker``'s tasks run now, from its status file."""
    return [s for t in worker.status().get("tasks", []) for s in t.get("shards", [])]


def wait_settled(workers: list[WorkerProcess], shards: int, timeout: float = 90.0) -> dict[str, list[str]]:
    """Until every shard is owned exactly once and every worker owns at least one (and is subscribed)."""
    deadline = time.monotonic() + timeout
    owners: dict[str, list[str]] = {}
    while time.monotonic() < deadline:
        for w in workers:
            assert w.alive(), w.log()
        owners = {w.status_file.stem: owned(w) for w in workers}
        every = [s for o in owners.values() for s in o]
        subscribed = all(
            t["subscribed"] for w in workers for t in w.status().get("tasks", [{"subscribed": 0}])
        )
        if len(every) == shards and len(set(every)) == shards and all(owners.values()) and subscribed:
            return owners
        time.sleep(0.5)
    logs = "\n".join(w.log() for w in workers)
    raise AssertionError(f"shards not settled after {timeout}s: {owners}\n{logs}")


def shown_by_http(worker: WorkerProcess) -> tuple[list[str], float]:
    """The shards ``worker``'s /readyz names, and its mqtt_kafka_sync_shards_owned."""
    base = f"http://127.0.0.1:{worker.metrics_port}"
    deadline = time.monotonic() + 15  # a shard's new producer reports Kafka up within a second or so
    while True:
        try:
            with urllib.request.urlopen(f"{base}/readyz", timeout=5) as response:  # noqa: S310 - our own URL
                readyz = response.read().decode()
            break
        except urllib.error.HTTPError as exc:
            body = exc.read().decode()
            if time.monotonic() > deadline:
                raise AssertionError(f"/readyz {exc.code}: {body}") from None
            print(f"[/readyz] {worker.status_file.stem}: {exc.code} {body!r}")
            time.sleep(0.2)
    with urllib.request.urlopen(f"{base}/metrics", timeout=5) as response:  # noqa: S310 - our own URL
        metrics = response.read().decode()
    shards = [
        s
        for line in readyz.splitlines()
        if " owns shards: " in line
        for s in line.split(": ", 1)[1].split(", ")
    ]
    gauge = sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("mqtt_kafka_sync_shards_owned{")
    )
    return shards, gauge


def test_three_workers_six_shards_deliver_every_device_in_order(brokers: Any, tmp_path: Path) -> None:
    scenario = ShardedScenario(brokers, tmp_path)
    ports = free_ports(3)
    workers = [
        WorkerProcess(scenario.config, tmp_path, f"w{i}", metrics_port=ports[i]).start() for i in range(3)
    ]
    try:
        owners = wait_settled(workers, len(scenario.shards))
        print(f"\n[3 workers, 6 shards] owners: {owners}")
        for w in workers:  # /readyz and the metric say the same as the status file
            shards, gauge = shown_by_http(w)
            assert sorted(shards) == sorted(owned(w)) and gauge == len(shards), (shards, gauge, owned(w))
        result = scenario.simulator(60, 500, rate=6000).run()
        assert result.ok, result.summary()
        report = scenario.verify(result.per_device_last_seq)
        print(f"[3 workers, 6 shards] {report.summary()}")
        received = {w.status_file.stem: w.totals().get("received", 0) for w in workers}
        print(f"[3 workers, 6 shards] received per worker: {received}")
        assert report.lost == 0, report.summary()
        assert report.duplicated == 0, report.summary()
        assert report.out_of_order == 0, report.summary()
        assert report.key_errors == 0 and report.partition_splits == 0, report.summary()
        assert all(n > 0 for n in received.values()), received
    finally:
        for w in workers:
            w.stop()


def wait_owning(workers: list[WorkerProcess], shards: set[str], timeout: float) -> float:
    """Seconds until ``workers`` own (and are subscribed to) every shard of ``shards``."""
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        mine = {s for w in workers for s in owned(w)}
        subscribed = all(
            t["subscribed"] for w in workers for t in w.status().get("tasks", [{"subscribed": 0}])
        )
        if shards <= mine and subscribed:
            return time.monotonic() - start
        time.sleep(0.1)
    logs = "\n".join(w.log() for w in workers)
    raise AssertionError(f"shards {sorted(shards)} not taken over within {timeout}s\n{logs}")


@pytest.mark.parametrize("session_timeout_ms", [10_000, 6_000])
def test_kill_9_of_a_worker_moves_its_shards_and_loses_nothing(
    brokers: Any, tmp_path: Path, session_timeout_ms: int
) -> None:
    """The killed worker's shards move after the group's session timeout (10 s by default, 6 s the
    least a Kafka broker accepts by default); their new owners resume the sessions and the broker
    re-sends what was not acknowledged."""
    timeout: dict[str, Any] = {"mqtt.shards.session.timeout.ms": session_timeout_ms}
    scenario = ShardedScenario(brokers, tmp_path, **timeout)
    workers = [scenario.worker(f"w{i}").start() for i in range(3)]
    survivors = workers[1:]
    simulator = scenario.simulator(60, 500, rate=1000)
    try:
        wait_settled(workers, len(scenario.shards))
        victim = set(owned(workers[0]))
        simulator.start()
        assert workers[0].wait_acked(2000, timeout=60), workers[0].log()
        workers[0].kill9()
        moved_s = wait_owning(survivors, victim, timeout=60)
        result = simulator.wait(180)
        assert result is not None and result.ok, result
        report = scenario.verify(result.per_device_last_seq, timeout_s=180)
        print(
            f"\n[kill -9, session timeout {session_timeout_ms} ms] shards {sorted(victim)} resumed by "
            f"survivors {moved_s:.1f}s after the kill"
        )
        print(f"[kill -9] {report.summary()}")
        assert report.lost == 0, report.summary()
        assert report.out_of_order == 0, report.summary()
        assert report.key_errors == 0 and report.partition_splits == 0, report.summary()
    finally:
        if simulator.running:
            simulator.stop()
        for w in survivors:
            w.stop()


@pytest.mark.parametrize("mode", ["shared", "sharded"])
def test_mosquitto_restart_while_devices_publish(brokers: Any, tmp_path: Path, mode: str) -> None:
    """Mosquitto stopped (SIGTERM, it saves its sessions) and started again while devices publish.

    Mosquitto 2.0 restores persistent sessions but not their *shared* subscriptions: in shared mode
    what devices publish before the worker subscribed again is acknowledged to them and dropped
    (printed, documented in docs/delivery-guarantees.md). A shard's session holds a plain
    subscription, which is restored, so Mosquitto queues those messages for it: nothing is lost.
    The worker reaches Mosquitto through a proxy that stays cut for 5 s after the restart, so the
    devices always publish for a while before the worker is back (as when its reconnect backoff
    is longer than theirs), instead of a window left to timing.
    """
    if not brokers.controllable:
        pytest.skip("brokers given by environment variables cannot be restarted by the test")
    proxy = TcpProxy(brokers.mqtt_host, brokers.mqtt_port)
    scenario = ShardedScenario(
        brokers, tmp_path, mode=mode, **{"mqtt.server.uri": f"tcp://127.0.0.1:{proxy.port}"}
    )
    worker = scenario.worker(mode).start()
    simulator = scenario.simulator(60, 200, rate=1000)
    try:
        worker.wait_subscribed()
        simulator.start()
        assert worker.wait_acked(2000, timeout=60), worker.log()
        proxy.cut()
        brokers.stop_mqtt()
        brokers.start_mqtt()
        time.sleep(5.0)
        proxy.restore()
        result = simulator.wait(180)
        assert result is not None and result.ok, result
        report = scenario.verify(result.per_device_last_seq, timeout_s=180)
        print(f"\n[mosquitto restart, {mode}] {report.summary()}")
        if mode == "sharded":
            assert report.lost == 0, report.summary()
            assert report.out_of_order == 0, report.summary()
    finally:
        if simulator.running:
            simulator.stop()
        worker.stop()
        proxy.close()


def test_scaling_from_one_to_three_workers_and_back_under_load(brokers: Any, tmp_path: Path) -> None:
    """Workers join and leave while devices publish: shards move by revocation (drained, handed
    over), only the moved ones pause, and each device's messages stay in order."""
    scenario = ShardedScenario(brokers, tmp_path)
    first = scenario.worker("w0").start()
    simulator = scenario.simulator(60, 800, rate=1200)
    extra: list[WorkerProcess] = []
    try:
        wait_settled([first], len(scenario.shards))
        simulator.start()
        assert first.wait_acked(3000, timeout=60), first.log()
        extra = [scenario.worker(f"w{i}").start() for i in (1, 2)]
        owners = wait_settled([first, *extra], len(scenario.shards))
        print(f"\n[scale 1-3-1] with three workers: {owners}")
        time.sleep(5.0)
        for w in extra:
            assert w.stop() == 0, w.log()
        back_s = wait_owning([first], set(scenario.shards), timeout=60)
        result = simulator.wait(180)
        assert result is not None and result.ok, result
        report = scenario.verify(result.per_device_last_seq, timeout_s=180)
        received = {w.status_file.stem: w.totals().get("received", 0) for w in [first, *extra]}
        print(f"[scale 1-3-1] all shards back on one worker {back_s:.1f}s after the others stopped")
        print(f"[scale 1-3-1] received per worker: {received}")
        print(f"[scale 1-3-1] {report.summary()}")
        assert report.lost == 0, report.summary()
        assert report.out_of_order == 0, report.summary()
        assert all(n > 0 for n in received.values()), received
    finally:
        if simulator.running:
            simulator.stop()
        for w in [first, *extra]:
            if w.alive():
                w.stop()


def test_kafka_unreachable_for_20_seconds_reorders_nothing_and_the_flow_resumes(
    brokers: Any, tmp_path: Path
) -> None:
    """Kafka stopped for 20 s under two workers: their group memberships run out (the shards are
    lost, drained briefly, their sessions closed), and come back with Kafka. Counted: sessions taken
    over from a live client (two workers driving one shard at once), lost and reordered messages."""
    if not brokers.controllable:
        pytest.skip("brokers given by environment variables cannot be stopped by the test")
    scenario = ShardedScenario(brokers, tmp_path)
    workers = [scenario.worker(f"w{i}").start() for i in range(2)]
    simulator = scenario.simulator(60, 400, rate=600)
    try:
        wait_settled(workers, len(scenario.shards))
        simulator.start()
        assert workers[0].wait_acked(1000, timeout=60), workers[0].log()
        brokers.stop_kafka()
        time.sleep(20.0)
        restarted = time.monotonic()
        brokers.start_kafka()
        settled = wait_owning(workers, set(scenario.shards), timeout=120)
        result = simulator.wait(240)
        assert result is not None and result.ok, result
        report = scenario.verify(result.per_device_last_seq, timeout_s=240)
        logs = [w.log_file.read_text(errors="replace") for w in workers]
        takeovers = sum(log.count("session taken over") for log in logs)
        lost_shards = sum(log.count("lost shards") for log in logs)
        print(
            f"\n[kafka 20 s] shards owned and subscribed again {settled:.1f}s after Kafka started "
            f"({time.monotonic() - restarted:.1f}s ago); shard losses logged {lost_shards}, "
            f"sessions taken over {takeovers}"
        )
        print(f"[kafka 20 s] {report.summary()}")
        assert report.lost == 0, report.summary()
        assert report.out_of_order == 0, report.summary()
        assert all(w.alive() for w in workers), "\n".join(w.log() for w in workers)
    finally:
        if simulator.running:
            simulator.stop()
        for w in workers:
            w.stop()


def test_a_coordination_topic_with_another_partition_count_stops_run_with_the_key_and_the_fix(
    brokers: Any, tmp_path: Path
) -> None:
    scenario = ShardedScenario(brokers, tmp_path, **{"mqtt.shards.topic": f"{PREFIX}{time.time_ns()}"})
    topic = json.loads(scenario.config.read_text())["config"]["mqtt.shards.topic"]
    ensure_topics(brokers.kafka_bootstrap, [topic], partitions=2)
    worker = scenario.worker("refused").start()
    assert worker.proc is not None
    code = worker.proc.wait(60)
    log = worker.log()
    assert code == 1, log
    assert f"coordination topic {topic!r} has 2 partitions but there are 6 shards" in log, log
    assert "set mqtt.shards.topic to a new topic name" in log, log
    assert "Traceback" not in log, log
