"""``mqtt-kafka-sync replay --to-mqtt`` against a real Kafka and a real Mosquitto, run as a user runs it.

The source is a command topic as the relay reads it: 50 devices, numbered commands (key
``p01.d0001``, payload with ``device`` and ``seq``). A relay connector file written by each test
supplies the route, the broker and the dead-letter topic. An MQTT client subscribed to the routes'
command topics before the replay records every message; each one is traced back to its source
record by its ``replay.source`` user property, so the checks are by content: exact count, payload,
topic, order per device, and, after kill -9 and a resume, missing and duplicated records.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Producer
from paho.mqtt.client import MQTTMessage

from mqtt_kafka_sync.sim.payload import device_ids, device_topic, parse_payload
from mqtt_kafka_sync.sim.verify import Record, read_topic
from tests.integration.mqtt_subscriber import RecordingSubscriber
from tests.integration.relay_scenario import PARTITIONS, RelayScenario
from tests.integration.replay_process import kill_9_once_confirmed, start_logged
from tests.integration.tcp_proxy import TcpProxy

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Got:
    topic: str
    payload: bytes
    properties: dict[str, str]
    expiry: int | None


def _got(message: MQTTMessage) -> Got:
    props = message.properties
    return Got(
        message.topic,
        bytes(message.payload),
        dict(getattr(props, "UserProperty", []) or []),
        getattr(props, "MessageExpiryInterval", None),
    )


def _subscriber(brokers: Any, topic_filter: str) -> RecordingSubscriber[Got]:
    return RecordingSubscriber(brokers, topic_filter, convert=_got)


class ReplayScenario(RelayScenario):
    """A relay's command topic, dead-letter topic and connector file, replayed with ``--to-mqtt``."""

    def __init__(self, brokers: Any, tmp_path: Path, **config: Any) -> None:
        super().__init__(brokers, tmp_path, **config)
        self.devices = device_ids(50)

    def numbered(self, first_seq: int, per_device: int, *, timestamp_ms: int | None = None) -> None:
        self.produce(
            self.devices,
            per_device,
            first_seq=first_seq,
            headers={"issued-by": "test"},
            timestamp_ms=timestamp_ms,
        )

    def produce_bad(self, keys: list[bytes | None], timestamp_ms: int) -> None:
        producer = Producer({"bootstrap.servers": self.brokers.kafka_bootstrap})
        for key in keys:
            producer.produce(self.topic, b'{"bad": true}', key, timestamp=timestamp_ms)
        assert producer.flush(30) == 0

    def originals(self) -> dict[tuple[int, int], Record]:
        return {(r.partition, r.offset): r for r in read_topic(self.brokers.kafka_bootstrap, self.topic)}

    def replay(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(self.command(*args), cwd=self.tmp_path, capture_output=True, text=True,
                              timeout=timeout, check=False)  # fmt: skip

    def command(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "mqtt_kafka_sync", "replay", "--source", self.topic,
                "--to-mqtt", str(self.config), *args]  # fmt: skip


def _source_of(got: Got, topic: str) -> tuple[int, int]:
    source_topic, partition, offset = got.properties["replay.source"].split("/")
    assert source_topic == topic
    return int(partition), int(offset)


def _check_messages(
    scenario: ReplayScenario, messages: list[Got], originals: dict[tuple[int, int], Record]
) -> Counter[tuple[int, int]]:
    """Every message is the command of the record its ``replay.source`` names, on that device's
    topic; per device, first copies arrive in seq order. Returns the copies per source record."""
    copies: Counter[tuple[int, int]] = Counter()
    last: dict[str, int] = {}
    for got in messages:
        where = _source_of(got, scenario.topic)
        copies[where] += 1
        record = originals[where]
        assert got.payload == record.value
        assert got.topic == device_topic((record.key or b"").decode(), scenario.template)
        assert got.properties["issued-by"] == "test"
        if copies[where] > 1:
            continue  # a repeat after a resume
        device, seq, _ = parse_payload(got.payload)
        assert seq > last.get(device, 0), f"{device}: seq {seq} after {last[device]}"
        last[device] = seq
    return copies


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + f".{ms % 1000:03d}Z"


def test_offset_and_time_ranges_into_mqtt_through_the_relay_routes(brokers: Any, tmp_path: Path) -> None:
    scenario = ReplayScenario(brokers, tmp_path, **{"routes.cmd.mqtt.message.expiry.seconds": 3600})
    now_ms = int(time.time() * 1000)
    old, mid, late = now_ms - 7_200_000, now_ms - 1_200_000, now_ms - 300_000
    scenario.numbered(1, 40, timestamp_ms=old)  # 2,000 commands two hours old: past the route's expiry
    scenario.numbered(41, 50, timestamp_ms=mid)  # 2,500 commands 20 minutes old
    scenario.produce_bad([b"p01.#", b"nodot", None], mid)
    scenario.numbered(91, 10, timestamp_ms=late)  # 500 commands 5 minutes old
    originals = scenario.originals()
    assert len(originals) == 5003
    first_mid = {p: min((o for (q, o), r in originals.items() if q == p and r.timestamp_ms == mid), default=0)
                 for p in range(PARTITIONS)}  # fmt: skip
    subscriber = _subscriber(brokers, f"{scenario.root}/#")
    try:
        offsets = ["--from-offset", "10", *(f"--to-offset={p}:{first_mid[p]}" for p in range(PARTITIONS))]
        plan = scenario.replay(*offsets, "--dry-run")
        assert plan.returncode == 0, plan.stdout + plan.stderr
        assert f"MQTT through relay connector {scenario.name}" in plan.stdout
        assert f"route cmd: key {{plant}}.{{device}} -> {scenario.template}, QoS 1" in plan.stdout
        assert f"broker {brokers.mqtt_uri}" in plan.stdout
        assert "3,600s from each record's Kafka timestamp" in plan.stdout
        assert f"dead letters (records the relay would not publish): {scenario.dlq}" in plan.stdout
        assert not list(tmp_path.glob("*.checkpoint.json")) and subscriber.count() == 0

        # Offsets 10 to the end of the old batch, each command with the route's whole lifetime.
        by_offsets = scenario.replay(*offsets, "--expiry-from", "replayed", "--checkpoint", "offsets.json")
        assert by_offsets.returncode == 0, by_offsets.stdout + by_offsets.stderr
        wanted_offsets = {w for w, r in originals.items() if r.timestamp_ms == old and w[1] >= 10}
        assert len(wanted_offsets) > 1500
        messages = subscriber.wait(len(wanted_offsets))
        assert {_source_of(m, scenario.topic) for m in messages} == wanted_offsets
        assert len(messages) == len(wanted_offsets), "an uninterrupted replay publishes each record once"
        assert all(3590 <= (m.expiry or 0) <= 3600 for m in messages), "not the route's whole lifetime"

        # The middle 20 minutes by time: 2,500 commands, and 3 records no route can publish.
        by_time = scenario.replay(
            "--from-time", _iso(mid), "--to-time", _iso(late), "--checkpoint", "time.json"
        )
        assert by_time.returncode == 0, by_time.stdout + by_time.stderr
        assert "3 dead-lettered to " + scenario.dlq + ": bad-key 2, unsafe-placeholder 1" in by_time.stdout
        wanted_time = {w for w, r in originals.items() if r.timestamp_ms == mid and r.key is not None}
        wanted_time -= {w for w, r in originals.items() if r.key in (b"p01.#", b"nodot")}
        assert len(wanted_time) == 2500
        messages = subscriber.wait(len(wanted_offsets) + 2500)
        assert len(messages) == len(wanted_offsets) + 2500
        copies = _check_messages(scenario, messages, originals)
        assert set(copies) == wanted_offsets | wanted_time and set(copies.values()) == {1}
        assert all(0 < (m.expiry or 0) <= 3600 - 1200 for m in messages[len(wanted_offsets) :])

        dead = read_topic(brokers.kafka_bootstrap, scenario.dlq, timeout_s=30)
        reasons = Counter((d.key, d.headers["dlq.reason"].decode()) for d in dead)
        expected = [(b"p01.#", "unsafe-placeholder"), (b"nodot", "bad-key"), (None, "bad-key")]
        assert reasons == Counter(expected)
        for d in dead:
            where = (int(d.headers["kafka.partition"]), int(d.headers["kafka.offset"]))
            assert d.headers["replay.source"].decode() == f"{scenario.topic}/{where[0]}/{where[1]}"
            assert d.headers["dlq.connector"].decode() == scenario.name

        # By default the route's expiry counts from the Kafka timestamp: the old commands are expired.
        expired = scenario.replay("--partition", "0", "--to-offset", "5", "--checkpoint", "expired.json")
        assert expired.returncode == 0, expired.stdout + expired.stderr
        assert "5 dead-lettered to " + scenario.dlq + ": expired 5" in expired.stdout
        assert subscriber.wait(len(messages), timeout=3.0) == messages, "an expired command was published"
        print(
            f"\n[replay into MQTT] offsets: {len(wanted_offsets)} published; time: 2500 published, "
            f"3 dead-lettered; expired: 5 dead-lettered; {len(messages)} messages, each once, in order"
        )
    finally:
        subscriber.close()


def test_kill_9_mid_replay_into_mqtt_then_resume_loses_nothing(brokers: Any, tmp_path: Path) -> None:
    scenario = ReplayScenario(brokers, tmp_path)
    scenario.numbered(1, 300)  # 15,000 commands
    originals = scenario.originals()
    checkpoint = tmp_path / "cp.json"
    subscriber = _subscriber(brokers, f"{scenario.root}/#")
    try:
        first = start_logged(
            scenario.command("--checkpoint", str(checkpoint), "--rate-max", "2500"),
            tmp_path / "first.log",
            tmp_path,
        )
        done_at_kill = kill_9_once_confirmed(first, checkpoint, 4000, tmp_path / "first.log", timeout=60)
        before = subscriber.count()

        resumed = scenario.replay("--checkpoint", str(checkpoint))
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        match = re.search(r"resuming: ([\d,]+) done; up to ([\d,]+) records", resumed.stdout)
        assert match, resumed.stdout
        may_repeat = int(match.group(2).replace(",", ""))
        messages = subscriber.wait(len(originals))
        copies = _check_messages(scenario, messages, originals)
        missing = set(originals) - set(copies)
        duplicates = len(messages) - len(copies)
        print(
            f"\n[replay into MQTT, kill -9] {len(originals)} records; killed at >= {done_at_kill} confirmed, "
            f"{before} messages; resume: up to {may_repeat} may repeat; {len(messages)} messages: "
            f"{len(missing)} missing, {duplicates} duplicated"
        )
        assert not missing, f"{len(missing)} records never published, e.g. {sorted(missing)[:5]}"
        assert 0 <= duplicates <= may_repeat
    finally:
        subscriber.close()


def test_broker_unreachable_mid_replay_waits_and_loses_nothing(brokers: Any, tmp_path: Path) -> None:
    proxy = TcpProxy(brokers.mqtt_host, brokers.mqtt_port)  # the replay's way to the broker, cut for 6 s
    scenario = ReplayScenario(brokers, tmp_path, **{"mqtt.server.uri": f"tcp://127.0.0.1:{proxy.port}"})
    scenario.numbered(1, 80)  # 4,000 commands
    originals = scenario.originals()
    subscriber = _subscriber(brokers, f"{scenario.root}/#")
    log = tmp_path / "replay.log"
    try:
        proc = start_logged(scenario.command("--rate-max", "1000", "--progress-interval", "1"), log, tmp_path)
        try:
            deadline = time.monotonic() + 30
            while subscriber.count() < 1000:
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, "the replay published nothing"
                time.sleep(0.1)
            proxy.cut()
            time.sleep(6.0)
            assert proc.poll() is None, "the replay gave up while the broker was unreachable"
            at_restore = subscriber.count()
            proxy.restore()
            assert proc.wait(90) == 0, log.read_text()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
        log_text = log.read_text()
        assert "MQTT broker unavailable" in log_text and "reachable again" in log_text, log_text
        messages = subscriber.wait(len(originals))
        copies = _check_messages(scenario, messages, originals)
        missing = set(originals) - set(copies)
        print(
            f"\n[replay into MQTT, broker unreachable 6 s] {len(originals)} records, {at_restore} messages "
            f"before the connection came back, {len(messages)} in all: {len(missing)} missing, "
            f"{len(messages) - len(copies)} duplicated"
        )
        assert not missing, f"{len(missing)} records never published, e.g. {sorted(missing)[:5]}"
    finally:
        subscriber.close()
        proxy.close()


def test_unreachable_longer_than_the_stall_timeout_stops_and_the_same_command_resumes(
    brokers: Any, tmp_path: Path
) -> None:
    proxy = TcpProxy(brokers.mqtt_host, brokers.mqtt_port)
    scenario = ReplayScenario(brokers, tmp_path, **{"mqtt.server.uri": f"tcp://127.0.0.1:{proxy.port}"})
    scenario.numbered(1, 60)  # 3,000 commands
    originals = scenario.originals()
    subscriber = _subscriber(brokers, f"{scenario.root}/#")
    args = ("--checkpoint", "cp.json", "--stall-timeout", "3")
    try:
        first = start_logged(scenario.command(*args, "--rate-max", "500"), tmp_path / "first.log", tmp_path)
        try:
            deadline = time.monotonic() + 30
            while subscriber.count() < 500:
                assert first.poll() is None and time.monotonic() < deadline, (
                    tmp_path / "first.log"
                ).read_text()
                time.sleep(0.1)
            proxy.cut()
            assert first.wait(30) == 1
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
        stopped = (tmp_path / "first.log").read_text()
        assert "nothing was confirmed for 3s (the MQTT broker" in stopped, stopped
        assert "the checkpoint stays before it, so running again resumes there" in stopped, stopped
        proxy.restore()
        resumed = scenario.replay(*args)
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        messages = subscriber.wait(len(originals))
        copies = _check_messages(scenario, messages, originals)
        missing = set(originals) - set(copies)
        print(
            f"\n[replay into MQTT, stalled] stopped after 3 s without confirmations, then resumed: "
            f"{len(originals)} records, {len(messages)} messages, {len(missing)} missing, "
            f"{len(messages) - len(copies)} duplicated"
        )
        assert not missing
    finally:
        subscriber.close()
        proxy.close()


def test_ctrl_c_stops_after_the_last_acknowledgement_and_the_resume_repeats_nothing(
    brokers: Any, tmp_path: Path
) -> None:
    scenario = ReplayScenario(brokers, tmp_path)
    scenario.numbered(1, 60)  # 3,000 commands
    originals = scenario.originals()
    subscriber = _subscriber(brokers, f"{scenario.root}/#")
    try:
        first = subprocess.Popen(
            scenario.command("--checkpoint", "cp.json", "--rate-max", "500"),
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        try:
            deadline = time.monotonic() + 30
            while subscriber.count() < 500:
                assert first.poll() is None and time.monotonic() < deadline, "the replay published nothing"
                time.sleep(0.1)
            first.send_signal(signal.SIGINT)
            try:
                out, _ = first.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                first.send_signal(signal.SIGUSR1)  # the CLI prints every thread's stack
                time.sleep(1.0)
                first.kill()
                out, _ = first.communicate(timeout=10)
                raise AssertionError(f"the replay did not stop within 60 s of SIGINT:\n{out}") from None
        finally:
            if first.poll() is None:
                first.kill()
                first.wait(10)
        assert first.returncode == 130, out
        assert re.search(r"stopped at [\d,]+ of 3,000; run the same command again to resume", out), out
        resumed = scenario.replay("--checkpoint", "cp.json")
        assert resumed.returncode == 0, resumed.stdout + resumed.stderr
        assert re.search(r"resuming: [\d,]+ done; up to 0 records", resumed.stdout), resumed.stdout
        messages = subscriber.wait(len(originals))
        copies = _check_messages(scenario, messages, originals)
        assert set(copies) == set(originals) and len(messages) == len(originals), "repeated or missing"
    finally:
        subscriber.close()
