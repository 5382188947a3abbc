"""Avro end to end: simulated devices -> real ``mqtt-kafka-sync run`` -> real Kafka -> decoded.

One route per schema in ``schemas/``. Payloads come from the device simulator (numbered telemetry)
and from ``publish_raw`` (a sample of every schema); records are read back and decoded with fastavro
(single-object encoding) or confluent-kafka's AvroDeserializer (registry wire format), and must
equal what was published, plus the device id the route fills from the topic and the schema's
defaults. Evolution: records written with telemetry v1 read with v2 and the reverse.

The registry is the fake in ``schema_registry_fake.py`` (HTTP, basic auth) unless
``SCHEMA_REGISTRY_URL`` (and ``SCHEMA_REGISTRY_USER_INFO``) name a real one.
"""

from __future__ import annotations

import io
import json
import math
import os
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import schemaless_reader

from mqtt_kafka_sync.codec.schema import AvroSchema, load_schema_file, parse_schema_text
from mqtt_kafka_sync.codec.wire import split
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.raw import publish_raw
from mqtt_kafka_sync.sim.verify import Record, read_topic
from tests.avro_samples import SAMPLES, SCHEMAS, as_json_types, expected_record
from tests.integration.schema_registry_fake import FakeSchemaRegistry
from tests.integration.topic_reads import wait_records
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration

ROUTES = {  # route -> (schema file, last MQTT topic level)
    "telemetry1": ("telemetry.v1.avsc", "telemetry1"),
    "telemetry2": ("telemetry.v2.avsc", "telemetry2"),
    "status": ("status.v1.avsc", "status"),
    "command": ("command.v1.avsc", "commands"),
    "ack": ("command-ack.v1.avsc", "acks"),
}
SAMPLE_DEVICE = "p07.d0700"
USER_INFO_ENV = "MKS_TEST_SCHEMA_REGISTRY_USER_INFO"


class AvroScenario:
    """A connector with one avro route per schema, its own MQTT root and Kafka topics."""

    def __init__(self, brokers: Any, tmp_path: Path, label: str, **converter: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.brokers = brokers
        self.root = f"avro{tag}"
        self.name = f"avro-{label}-{tag}"
        self.topics = {route: f"{self.name}-{route}" for route in ROUTES}
        self.dlq = f"{self.name}-dlq"
        ensure_topics(brokers.kafka_bootstrap, [*self.topics.values(), self.dlq], partitions=3)
        config: dict[str, str] = {
            "connector.class": "mqtt_kafka_sync.MqttSourceConnector",
            "mqtt.server.uri": brokers.mqtt_uri,
            "mqtt.shared.group": self.name,
            "mqtt.topics": f"{self.root}/#",
            "kafka.bootstrap.servers": brokers.kafka_bootstrap,
            "routes": ",".join(ROUTES),
            "errors.deadletterqueue.topic.name": self.dlq,
            **converter,
        }
        for route, (schema_file, leaf) in ROUTES.items():
            config |= {
                f"routes.{route}.mqtt.topic": f"{self.root}/plants/{{plant}}/devices/{{device}}/{leaf}",
                f"routes.{route}.kafka.topic": self.topics[route],
                f"routes.{route}.kafka.key": "{plant}.{device}",
                f"routes.{route}.value.format": "avro",
                f"routes.{route}.value.schema": str(SCHEMAS / schema_file),
                f"routes.{route}.value.fields.device": "{plant}.{device}",
            }
        self.config = tmp_path / f"{self.name}.json"
        self.config.write_text(json.dumps({"name": self.name, "config": config}, indent=2))
        self.worker = WorkerProcess(self.config, tmp_path, label)

    def mqtt_topic(self, route: str, device_id: str) -> str:
        plant, device = device_id.split(".")
        return f"{self.root}/plants/{plant}/devices/{device}/{ROUTES[route][1]}"

    def publish(self, route: str, payload: bytes, device_id: str = SAMPLE_DEVICE) -> None:
        publish_raw(
            self.brokers.mqtt_host, self.brokers.mqtt_port, self.mqtt_topic(route, device_id), payload
        )

    def simulate(self, route: str, devices: int, per_device: int) -> dict[str, int]:
        """Numbered telemetry from simulated devices (payload: device, seq, ts, value)."""
        template = f"{self.root}/plants/{{plant}}/devices/{{device}}/{ROUTES[route][1]}"
        simulator = DeviceSimulator(
            self.brokers.mqtt_host,
            self.brokers.mqtt_port,
            devices,
            per_device,
            topic_template=template,
            payload_size=0,
        )
        result = simulator.run()
        assert result.ok, result.summary()
        return result.per_device_last_seq

    def publish_samples(self) -> None:
        for route, (schema_file, _) in ROUTES.items():
            for sample in SAMPLES[schema_file]:
                self.publish(route, json.dumps(sample).encode())


def _schema(route: str) -> AvroSchema:
    return load_schema_file(SCHEMAS / ROUTES[route][0])


def _single_object(record: Record, writer: AvroSchema, reader: AvroSchema | None = None) -> Any:
    assert record.value is not None
    framed = split(record.value)
    assert framed is not None and framed.kind == "single-object", record.value[:12]
    assert framed.fingerprint == writer.fingerprint
    datum = schemaless_reader(io.BytesIO(framed.body), writer.parsed, reader.parsed if reader else None)
    return as_json_types(datum)


def _samples_of(records: list[Record]) -> list[Record]:
    return [r for r in records if r.key == SAMPLE_DEVICE.encode()]


def _check_simulated(records: list[Record], expected: dict[str, int], decode: Any) -> None:
    """Every (device, seq) arrived; each record is what the simulator sent (its value is a function
    of seq, its ts the send time), keyed and headed as routed."""
    started = time.time() - 600
    seen: Counter[tuple[str, int]] = Counter()
    for record in records:
        if record.key == SAMPLE_DEVICE.encode():
            continue
        datum = decode(record)
        device, seq = datum["device"], datum["seq"]
        seen[device, seq] += 1
        assert record.key == device.encode()
        assert datum["value"] == round(20.0 + 5.0 * math.sin(seq / 10.0), 3)
        assert started < datum["ts"] <= time.time()
        assert record.headers["mqtt.topic"].decode().endswith(f"/devices/{device.split('.')[1]}/telemetry1")
    missing = [(d, s) for d, last in expected.items() for s in range(1, last + 1) if (d, s) not in seen]
    assert not missing, f"{len(missing)} lost, e.g. {missing[:5]}"


def _tail(brokers: Any, topic: str, count: int, *extra: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-m", "mqtt_kafka_sync", "tail", topic, "--bootstrap", brokers.kafka_bootstrap,
         "--schemas", str(SCHEMAS), "--from-beginning", "--max", str(count), "--idle", "20", *extra],
        capture_output=True, text=True, timeout=60, check=False, env={**os.environ},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


# -- single-object encoding (no registry) ---------------------------------------------------------------


@pytest.fixture(scope="module")
def single_object(brokers: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AvroScenario]:
    scenario = AvroScenario(brokers, tmp_path_factory.mktemp("avro"), "single")
    scenario.worker.start()
    try:
        scenario.worker.wait_subscribed()
        yield scenario
        assert scenario.worker.alive(), scenario.worker.log()
    finally:
        assert scenario.worker.stop() == 0, scenario.worker.log()


def test_every_schema_round_trips_in_single_object_encoding(
    brokers: Any, single_object: AvroScenario
) -> None:
    scenario = single_object
    expected = scenario.simulate("telemetry1", devices=20, per_device=25)
    scenario.publish_samples()
    bootstrap = brokers.kafka_bootstrap
    v1, v2 = _schema("telemetry1"), _schema("telemetry2")
    telemetry = wait_records(
        bootstrap, scenario.topics["telemetry1"], 500 + len(SAMPLES["telemetry.v1.avsc"])
    )
    _check_simulated(telemetry, expected, lambda r: _single_object(r, v1))
    for route, (schema_file, _) in ROUTES.items():
        records = telemetry if route == "telemetry1" else wait_records(bootstrap, scenario.topics[route], 1)
        samples = _samples_of(records)
        decoded = [_single_object(r, _schema(route)) for r in samples]
        assert decoded == [expected_record(schema_file, s, SAMPLE_DEVICE) for s in SAMPLES[schema_file]]
    # Evolution: a v2 reader reads v1 records (defaults filled), a v1 reader reads v2 records.
    assert _single_object(telemetry[0], v1, v2) == {
        **_single_object(telemetry[0], v1),
        "unit": None,
        "quality": "good",
    }
    for record, sample in zip(
        _samples_of(read_topic(bootstrap, scenario.topics["telemetry2"])),
        SAMPLES["telemetry.v2.avsc"],
        strict=True,
    ):
        old = {k: v for k, v in sample.items() if k in v1.record_fields}
        assert _single_object(record, v2, v1) == {**old, "device": SAMPLE_DEVICE}
    # People read the topic with `tail`: fingerprint -> schema file -> decoded record.
    lines = _tail(brokers, scenario.topics["status"], 2)
    values = [json.loads(line.split(")  ", 1)[1]) for line in lines if line.startswith("  avro ")]
    assert values == [expected_record("status.v1.avsc", s, SAMPLE_DEVICE) for s in SAMPLES["status.v1.avsc"]]
    assert f"key {SAMPLE_DEVICE}" in lines[0] and "mqtt.topic=" in lines[1]


BAD = [
    (b"{not json", None, "not valid JSON"),
    (b'{"seq": 1, "ts": 1.5, "value": "\xff"}', None, "not valid UTF-8"),
    (b"[1, 2, 3]", None, "expected a JSON object"),
    (b'{"ts": 1.5, "value": 2.0}', "seq", "is missing"),
    (b'{"seq": "x", "ts": 1.5, "value": 2.0}', "seq", "expected long"),
    (b'{"seq": 1, "ts": 1.5, "value": true}', "value", "expected double"),
    (
        b'{"seq": 1, "ts": 1.5, "value": 2.0, "quality": "meh"}',
        "quality",
        "expected one of good, uncertain, bad",
    ),
    (b'{"seq": 1, "ts": 1.5, "value": 2.0, "colour": "red"}', "colour", "is not a field of record"),
    (b'{"device": "p99.d9999", "seq": 1, "ts": 1.5, "value": 2.0}', "device", "the payload has"),
]


def test_bad_payloads_go_to_the_dead_letter_topic_and_nothing_is_lost(
    brokers: Any, single_object: AvroScenario
) -> None:
    scenario = single_object
    device = "p08.d0800"
    totals_before = scenario.worker.totals()
    for seq, (payload, _, _) in enumerate(BAD, start=1):  # a good message after each bad one
        scenario.publish("telemetry2", payload, device)
        scenario.publish(
            "telemetry2", json.dumps({"seq": seq, "ts": 1.0, "value": float(seq)}).encode(), device
        )
    dead = wait_records(brokers.kafka_bootstrap, scenario.dlq, len(BAD))
    assert len(dead) == len(BAD)
    by_payload = {r.value: r for r in dead}
    for payload, field, detail in BAD:
        record = by_payload[payload]  # the payload as it came, byte for byte
        assert record.headers["dlq.reason"] == b"bad-payload"
        text = record.headers["dlq.detail"].decode()
        assert detail in text and (text.startswith(f"field {field!r}: ") if field else True), text
        assert record.headers["mqtt.topic"] == scenario.mqtt_topic("telemetry2", device).encode()
        assert record.headers["dlq.connector"] == scenario.name.encode()
    good = [
        r
        for r in read_topic(brokers.kafka_bootstrap, scenario.topics["telemetry2"])
        if r.key == device.encode()
    ]
    seqs = [_single_object(r, _schema("telemetry2"))["seq"] for r in good]
    assert seqs == list(range(1, len(BAD) + 1))
    assert scenario.worker.alive(), scenario.worker.log()
    deadline = time.monotonic() + 30
    while True:  # every message, good or bad, acknowledged to MQTT: none lost, none stuck
        totals = scenario.worker.totals()
        done = {
            k: totals[k] - totals_before.get(k, 0) for k in ("received", "produced", "dead_lettered", "acked")
        }
        if done["acked"] >= 2 * len(BAD) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert done == {
        "received": 2 * len(BAD),
        "produced": len(BAD),
        "dead_lettered": len(BAD),
        "acked": 2 * len(BAD),
    }


# -- Confluent Schema Registry wire format ------------------------------------------------------------------


@pytest.fixture
def schema_registry() -> Iterator[tuple[str, str | None]]:
    """``(url, user:password)`` of a real registry from the environment, else of the fake one."""
    url = os.environ.get("SCHEMA_REGISTRY_URL")
    if url:
        yield url, os.environ.get("SCHEMA_REGISTRY_USER_INFO")
        return
    user_info = f"bridge:{uuid.uuid4().hex}"
    with FakeSchemaRegistry(user_info) as fake:
        yield fake.url, user_info


def test_every_schema_round_trips_in_the_registry_wire_format(
    brokers: Any, tmp_path: Path, schema_registry: tuple[str, str | None], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, user_info = schema_registry
    converter = {"value.converter.schema.registry.url": url}
    if user_info:
        monkeypatch.setenv(USER_INFO_ENV, user_info)  # the worker resolves ${env:...} from its environment
        converter["value.converter.basic.auth.user.info"] = f"${{env:{USER_INFO_ENV}}}"
    scenario = AvroScenario(brokers, tmp_path, "registry", **converter)
    scenario.worker.start()
    try:
        scenario.worker.wait_subscribed()
        expected = scenario.simulate("telemetry1", devices=10, per_device=20)
        scenario.publish_samples()
        client = SchemaRegistryClient(
            {"url": url, **({"basic.auth.user.info": user_info} if user_info else {})}
        )
        deserializer = AvroDeserializer(client)
        bootstrap = brokers.kafka_bootstrap

        def decode(route: str, record: Record) -> Any:
            assert record.value is not None and record.value[:1] == b"\x00"
            registered = client.get_latest_version(f"{scenario.topics[route]}-value")  # TopicNameStrategy
            assert record.value[1:5] == int(registered.schema_id or 0).to_bytes(4, "big")
            context = SerializationContext(scenario.topics[route], MessageField.VALUE)
            return as_json_types(deserializer(record.value, context))

        telemetry = wait_records(
            bootstrap, scenario.topics["telemetry1"], 200 + len(SAMPLES["telemetry.v1.avsc"])
        )
        _check_simulated(telemetry, expected, lambda r: decode("telemetry1", r))
        for route, (schema_file, _) in ROUTES.items():
            records = (
                telemetry if route == "telemetry1" else wait_records(bootstrap, scenario.topics[route], 1)
            )
            decoded = [decode(route, r) for r in _samples_of(records)]
            assert decoded == [expected_record(schema_file, s, SAMPLE_DEVICE) for s in SAMPLES[schema_file]]
        # Evolution: the writer schema comes from the registry by id, the reader is telemetry v2.
        record = telemetry[0]
        assert record.value is not None
        writer = parse_schema_text(
            str(client.get_schema(int.from_bytes(record.value[1:5], "big")).schema_str), "id"
        )
        datum = schemaless_reader(io.BytesIO(record.value[5:]), writer.parsed, _schema("telemetry2").parsed)
        assert datum == {**decode("telemetry1", record), "unit": None, "quality": "good"}
        # tail decodes registry records with --registry (credentials from the environment).
        env_extra = ["--registry", url]
        if user_info:
            monkeypatch.setenv("SCHEMA_REGISTRY_USER_INFO", user_info)
        lines = _tail(brokers, scenario.topics["ack"], 2, *env_extra)
        values = [json.loads(line.split(")  ", 1)[1]) for line in lines if line.startswith("  avro ")]
        assert values == [
            expected_record("command-ack.v1.avsc", s, SAMPLE_DEVICE) for s in SAMPLES["command-ack.v1.avsc"]
        ]
        assert scenario.worker.alive(), scenario.worker.log()
        assert read_topic(bootstrap, scenario.dlq, timeout_s=5) == []
    finally:
        assert scenario.worker.stop() == 0, scenario.worker.log()
