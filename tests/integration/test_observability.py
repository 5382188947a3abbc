"""Metrics, health and dashboards against a real Prometheus scraping a real worker.

One ``mqtt-kafka-sync run`` process runs an ingest connector (with a lag throttle in observe mode,
watching a downstream consumer group), a command relay and a sharded ingest connector (two shards,
no traffic: its shards panel), while the device simulator publishes
telemetry and commands are written to Kafka. Prometheus (Debian's package, its own config, storage
and port) scrapes the worker every second and loads ``compose/prometheus/alerts.yml``. Then every
PromQL expression of every panel (and every template variable) of every dashboard under
``compose/grafana/dashboards`` is evaluated through Prometheus's HTTP API: each must return data.
``/healthz`` and ``/readyz`` are checked before the tasks are up, while they are, and while Kafka
is stopped.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer
from paho.mqtt.client import Client
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from mqtt_kafka_sync.devstack import free_ports
from mqtt_kafka_sync.devstack.paths import repo_root
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.command_devices import produce_commands
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.payload import device_ids
from tests.integration.worker_process import WorkerProcess, write_source_config

pytestmark = pytest.mark.integration

DASHBOARDS = repo_root() / "compose" / "grafana" / "dashboards"
ALERTS = repo_root() / "compose" / "prometheus" / "alerts.yml"
GRAFANA_VARIABLES = {
    "$__rate_interval": "10s",
    "$__interval": "1s",
    "$connector": ".*",
    "$group": ".*",
}


# -- Prometheus ---------------------------------------------------------------------------------
class Prometheus:
    """The real Prometheus binary with its own config, storage and port, scraping ``target``."""

    def __init__(self, workdir: Path, target: str) -> None:
        binary = shutil.which("prometheus") or "/usr/bin/prometheus"
        if not Path(binary).exists():
            pytest.fail(
                "prometheus is not installed: scripts/install-system-deps.sh installs Debian's package",
                pytrace=False,
            )
        self.port = free_ports(1)[0]
        self.url = f"http://127.0.0.1:{self.port}"
        config = workdir / "prometheus.yml"
        config.write_text(
            json.dumps(  # JSON is YAML
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(ALERTS)],
                    "scrape_configs": [
                        {"job_name": "mqtt-kafka-sync", "static_configs": [{"targets": [target]}]}
                    ],
                }
            )
        )
        self.log = workdir / "prometheus.log"
        with self.log.open("wb") as log:
            self.proc = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={workdir / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while _http(f"{self.url}/-/ready")[0] != 200:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                pytest.fail(f"Prometheus did not start:\n{self.log.read_text()[-3000:]}", pytrace=False)
            time.sleep(0.2)

    def query(self, expr: str) -> list[Any]:
        status, body = _http(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        answer = json.loads(body)
        assert status == 200 and answer["status"] == "success", f"{expr}: {body[:500]!r}"
        return list(answer["data"]["result"])

    def rules(self) -> list[dict[str, Any]]:
        answer = json.loads(_http(f"{self.url}/api/v1/rules")[1])
        return [rule for group in answer["data"]["groups"] for rule in group["rules"]]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


def _http(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body); status 0 when nothing answers."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 - our own http URL
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as exc:
        return int(exc.code), bytes(exc.read())
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0, b""


def _wait_http(url: str, want: int, timeout: float) -> bytes:
    deadline = time.monotonic() + timeout
    status, body = 0, b""
    while time.monotonic() < deadline:
        status, body = _http(url)
        if status == want:
            return body
        time.sleep(0.2)
    raise AssertionError(f"{url}: wanted {want}, last {status} {body.decode(errors='replace')}")


# -- dashboards -----------------------------------------------------------------------------------
def dashboard_queries() -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and template variable of every dashboard."""
    files = sorted(DASHBOARDS.glob("*.json"))
    assert files, f"no dashboards in {DASHBOARDS}"
    for path in files:
        board = json.loads(path.read_text())
        for variable in board.get("templating", {}).get("list", []):
            query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
            match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
            assert match, f"{path.name} variable {variable['name']}: unsupported query {query!r}"
            yield f"{path.name} variable ${variable['name']}", f"count by ({match[2]}) ({match[1]})"
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(name, value)
                assert "$" not in expr, f"{path.name} {panel['title']!r}: unknown variable in {expr}"
                yield f"{path.name} panel {panel['title']!r} {target['refId']}", expr


# -- the test ----------------------------------------------------------------------------------
def test_dashboards_have_data_and_probes_answer(brokers: Any, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    root, telemetry, commands, downstream = f"o{tag}", f"obs-{tag}", f"obs-cmd-{tag}", f"obs-down-{tag}"
    ensure_topics(brokers.kafka_bootstrap, [telemetry, f"{telemetry}-dlq"], partitions=3)
    ensure_topics(brokers.kafka_bootstrap, [commands, f"{commands}-dlq"], partitions=3)
    source = write_source_config(
        tmp_path / "source.json",
        brokers,
        name=f"obs-{tag}",
        root=root,
        topic=telemetry,
        **{
            "mqtt.topics": f"{root}/plants/+/devices/+/telemetry",
            "throttle.lag.groups": downstream,
            "throttle.lag.high": "100000",
            "throttle.rate.min": "100",
            "throttle.mode": "observe",
            "throttle.lag.interval.seconds": "1",
        },
    )
    relay = tmp_path / "relay.json"
    relay.write_text(
        json.dumps(
            {
                "name": f"obs-relay-{tag}",
                "config": {
                    "connector.class": "mqtt_kafka_sync.KafkaCommandRelayConnector",
                    "mqtt.server.uri": brokers.mqtt_uri,
                    "kafka.bootstrap.servers": brokers.kafka_bootstrap,
                    "kafka.group.id": f"obs-relay-{tag}",
                    "routes": "cmd",
                    "routes.cmd.kafka.topic": commands,
                    "routes.cmd.kafka.key": "{plant}.{device}",
                    "routes.cmd.mqtt.topic": f"{root}/plants/{{plant}}/devices/{{device}}/commands",
                    "errors.deadletterqueue.topic.name": f"{commands}-dlq",
                },
            }
        )
    )
    sharded_root = f"{root}-sharded"
    sharded = write_source_config(  # its shards panel: two shards, no traffic needed
        tmp_path / "sharded.json",
        brokers,
        name=f"obs-sharded-{tag}",
        root=sharded_root,
        topic=telemetry,
        **{
            "mqtt.topics": "",
            "mqtt.subscription": "sharded",
            "mqtt.shards": f"{sharded_root}/plants/p01/#,{sharded_root}/plants/p02/#",
            "mqtt.shards.topic": f"obs-shards-{tag}",
        },
    )
    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    worker = WorkerProcess([source, relay, sharded], tmp_path, metrics_port=port).start()
    prometheus: Prometheus | None = None
    try:
        # Before the tasks are connected: alive, not ready.
        deadline = time.monotonic() + 30
        while (first := _http(f"{base}/readyz"))[0] == 0:
            assert worker.alive() and time.monotonic() < deadline, f"no metrics port:\n{worker.log()}"
            time.sleep(0.05)
        assert first[0] == 503, first
        assert b"not ready" in first[1]
        assert _http(f"{base}/healthz") == (200, b"ok\n")
        worker.wait_subscribed()
        ready = _wait_http(f"{base}/readyz", 200, 30).decode().splitlines()
        assert ready[0] == "ready" and len(ready) == 2, ready  # and the line of the sharded task's shards
        shards = f"{sharded_root}/plants/p01/#, {sharded_root}/plants/p02/#"
        assert ready[1].endswith(f"owns shards: {shards}"), ready

        prometheus = Prometheus(tmp_path, f"127.0.0.1:{port}")
        devices = device_ids(40)
        sim = DeviceSimulator(
            brokers.mqtt_host,
            brokers.mqtt_port,
            40,
            300,
            rate=600,
            topic_template=f"{root}/plants/{{plant}}/devices/{{device}}/telemetry",
        )
        sim.start()
        _publish_bad_payloads(brokers, root, 5)  # dead letters with reason bad-payload
        produce_commands(brokers.kafka_bootstrap, commands, devices[:10], 5)
        _commit_some(brokers.kafka_bootstrap, telemetry, downstream)  # the throttle's group: lag > 0

        queries = list(dashboard_queries())
        empty = _until_all_have_data(prometheus, queries, timeout=45)
        assert not empty, "panels without data:\n" + "\n".join(f"  {w}: {q}" for w, q in empty)

        sent = sim.wait()
        assert sent is not None
        received = prometheus.query(f'sum(mqtt_kafka_sync_received_messages_total{{connector="obs-{tag}"}})')
        assert float(received[0]["value"][1]) > 0
        broken = [r["name"] for r in prometheus.rules() if r.get("health") == "err"]
        assert not broken, f"alert rules failing against real data: {broken}"

        # Kafka away: not ready, and /readyz says why; back: ready again.
        brokers.stop_kafka()
        try:
            body = _wait_http(f"{base}/readyz", 503, 30)
            assert b"no Kafka broker connection" in body, body
            assert _http(f"{base}/healthz")[0] == 200
        finally:
            brokers.start_kafka()
        _wait_http(f"{base}/readyz", 200, 60)
        assert worker.stop() == 0
    finally:
        if prometheus is not None:
            prometheus.stop()
        if worker.alive():
            worker.stop()


def _until_all_have_data(
    prometheus: Prometheus, queries: list[tuple[str, str]], timeout: float
) -> list[tuple[str, str]]:
    deadline = time.monotonic() + timeout
    while True:
        empty = [(where, expr) for where, expr in queries if not prometheus.query(expr)]
        if not empty or time.monotonic() > deadline:
            return empty
        time.sleep(2)


def _publish_bad_payloads(brokers: Any, root: str, count: int) -> None:
    client = Client(CallbackAPIVersion.VERSION2, protocol=MQTTProtocolVersion.MQTTv5)
    client.connect(brokers.mqtt_host, brokers.mqtt_port)
    client.loop_start()
    try:
        for i in range(count):
            client.publish(f"{root}/plants/p0/devices/bad{i}/telemetry", b"not json", qos=1).wait_for_publish(
                10
            )
    finally:
        client.loop_stop()
        client.disconnect()


def _commit_some(bootstrap: str, topic: str, group: str) -> None:
    """A downstream consumer reads a few records, commits, and leaves: its lag grows from there."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    try:
        deadline = time.monotonic() + 30
        read = 0
        while read < 20 and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                read += 1
        assert read, f"no records in {topic}"
        consumer.commit(asynchronous=False)
    finally:
        consumer.close()
