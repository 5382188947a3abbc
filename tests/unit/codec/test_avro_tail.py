"""``tail``'s decoding and printing: every wire format, JSON, text and bytes, without a broker."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from mqtt_kafka_sync.cli.tail import format_record
from mqtt_kafka_sync.codec import registry
from mqtt_kafka_sync.codec.decode import ValueDecoder
from mqtt_kafka_sync.codec.registry_settings import RegistrySettings
from mqtt_kafka_sync.codec.schema import AvroSchema, SchemaStore, load_schema_file, parse_schema_text
from mqtt_kafka_sync.config.model import AvroValueConfig, RouteConfig
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from tests.avro_samples import SCHEMAS

TOPIC = "plants/p01/devices/d0001/telemetry"
PAYLOAD = b'{"seq": 7, "ts": 1.5, "value": 2.0}'
RECORD = {"device": "p01.d0001", "seq": 7, "ts": 1.5, "value": 2.0}


def _encoded(registry_settings: RegistrySettings | None = None) -> bytes:
    schema = load_schema_file(SCHEMAS / "telemetry.v1.avsc")
    value = AvroValueConfig(
        schema,
        "telemetry-value" if registry_settings else None,
        (("device", "{plant}.{device}"),),
        registry=registry_settings,
    )
    route = RouteConfig("r", "plants/{plant}/devices/{device}/telemetry", "telemetry", None, "avro", value)
    routes = IngestRoutes([route])
    return routes.encode(routes.route(TOPIC), PAYLOAD, TOPIC)


def test_single_object_values_are_decoded_with_the_schema_their_fingerprint_names() -> None:
    store, _ = SchemaStore.from_dir(SCHEMAS)
    decoded = ValueDecoder(store).decode(_encoded())
    assert decoded.kind == "avro" and decoded.value == RECORD
    assert decoded.label.startswith("avro io.mqttkafkasync.v1.Telemetry (fingerprint 250e5ba7190af647, ")
    assert decoded.label.endswith("telemetry.v1.avsc)")


def test_an_unknown_fingerprint_is_said_so() -> None:
    decoded = ValueDecoder(SchemaStore([])).decode(_encoded())
    assert decoded.value is None
    assert "fingerprint 250e5ba7190af647: no schema in the schema folder has it" in decoded.label


def test_registry_values_are_decoded_with_the_schema_their_id_names() -> None:
    settings = RegistrySettings(url=f"mock://tail-{uuid.uuid4().hex}")
    value = _encoded(settings)

    def by_id(schema_id: int) -> AvroSchema:
        return parse_schema_text(registry.schema_by_id(settings, schema_id), f"registry id {schema_id}")

    decoded = ValueDecoder(SchemaStore([]), by_id).decode(value)
    assert decoded.value == RECORD and decoded.label == "avro io.mqttkafkasync.v1.Telemetry (registry id 1)"
    without = ValueDecoder(SchemaStore([])).decode(value)
    assert without.value is None and "no registry given" in without.label


@pytest.mark.parametrize(
    ("value", "kind", "shown"),
    [
        (b'{"a": [1, 2]}', "json", {"a": [1, 2]}),
        (b"hello", "text", "hello"),
        (b"\xff\xfe\x00", "bytes", "fffe00"),
        (None, "null", None),
    ],
)
def test_other_values(value: bytes | None, kind: str, shown: Any) -> None:
    decoded = ValueDecoder(SchemaStore([])).decode(value)
    assert (decoded.kind, decoded.value) == (kind, shown)


def test_a_record_prints_position_key_headers_and_value() -> None:
    store, _ = SchemaStore.from_dir(SCHEMAS)
    msg = Message(
        topic="telemetry",
        partition=3,
        offset=17,
        key=b"p01.d0001",
        value=_encoded(),
        headers=[("mqtt.topic", TOPIC.encode()), ("dlq.detail", b"field 'seq': x y")],
        timestamp=(TIMESTAMP_CREATE_TIME, 1_718_000_000_123),
    )
    lines = format_record(msg, ValueDecoder(store).decode(msg.value())).splitlines()
    assert lines[0] == "telemetry  partition 3  offset 17  key p01.d0001  2024-06-10T06:13:20.123+00:00"
    assert lines[1] == f"  headers  mqtt.topic={TOPIC}  dlq.detail=\"field 'seq': x y\""
    label, _, value = lines[2].partition(")  ")
    assert label.startswith("  avro io.mqttkafkasync.v1.Telemetry (fingerprint")
    assert json.loads(value) == RECORD
