"""The avro value format: JSON payloads in, framed Avro out, bad payloads rejected with the field."""

from __future__ import annotations

import io
import json
import struct
import uuid
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.schema_registry import (
    Schema,
    record_subject_name_strategy,
    topic_record_subject_name_strategy,
    topic_subject_name_strategy,
)
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext
from fastavro import parse_schema, schemaless_reader

from mqtt_kafka_sync.codec import registry
from mqtt_kafka_sync.codec.avro import AvroEncoder
from mqtt_kafka_sync.codec.exceptions import Rejected
from mqtt_kafka_sync.codec.json_avro import UnknownFields, compile_converter
from mqtt_kafka_sync.codec.registry_settings import RegistrySettings
from mqtt_kafka_sync.codec.schema import AvroSchema, load_schema_file, parse_schema_text
from mqtt_kafka_sync.codec.values import encode_value as encode_with
from mqtt_kafka_sync.codec.wire import single_object_header, split
from mqtt_kafka_sync.config.model import AvroValueConfig, RouteConfig
from mqtt_kafka_sync.errors import DecodeError, SchemaRegistryError
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from mqtt_kafka_sync.routing.router import RouteMatch
from tests.avro_samples import SAMPLES, SCHEMAS, as_json_types, expected_record

PATTERN = "plants/{plant}/devices/{device}/x"
TOPIC = "plants/p01/devices/d0001/x"
DEVICE = "p01.d0001"


def _match(
    schema_file: str,
    *,
    registry_settings: RegistrySettings | None = None,
    subject: str | None = None,
    from_registry: bool = False,
    unknown: UnknownFields = "reject",
) -> Routed:
    schema = load_schema_file(SCHEMAS / schema_file)
    value = AvroValueConfig(
        schema=None if from_registry else schema,
        subject=subject,
        fields=(("device", "{plant}.{device}"),),
        unknown_fields=unknown,
        registry=registry_settings,
    )
    routes = IngestRoutes([RouteConfig("r", PATTERN, "out", "{plant}.{device}", "avro", value)])
    return Routed(routes, routes.route(TOPIC))


@dataclass(frozen=True)
class Routed:
    routes: IngestRoutes
    match: RouteMatch


def encode_value(routed: Routed, payload: bytes, mqtt_topic: str) -> bytes:
    return routed.routes.encode(routed.match, payload, mqtt_topic)


def _read(body: bytes, writer: AvroSchema, reader: AvroSchema | None = None) -> Any:
    return as_json_types(
        schemaless_reader(io.BytesIO(body), writer.parsed, reader.parsed if reader else None)
    )


@pytest.mark.parametrize(
    ("schema_file", "sample"),
    [(f, s) for f, samples in SAMPLES.items() for s in samples],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_single_object_round_trip(schema_file: str, sample: dict[str, Any]) -> None:
    match = _match(schema_file)
    value = encode_value(match, json.dumps(sample).encode(), TOPIC)
    schema = load_schema_file(SCHEMAS / schema_file)
    assert value[:2] == b"\xc3\x01" and value[2:10] == schema.fingerprint
    framed = split(value)
    assert framed is not None and framed.kind == "single-object"
    assert _read(framed.body, schema) == expected_record(schema_file, sample, DEVICE)


@pytest.mark.parametrize("sample", SAMPLES["telemetry.v1.avsc"])
def test_new_reader_reads_old_writer(sample: dict[str, Any]) -> None:
    v1, v2 = (load_schema_file(SCHEMAS / f"telemetry.v{n}.avsc") for n in (1, 2))
    body = encode_value(_match("telemetry.v1.avsc"), json.dumps(sample).encode(), TOPIC)[10:]
    assert _read(body, v1, v2) == {**sample, "device": DEVICE, "unit": None, "quality": "good"}


@pytest.mark.parametrize("sample", SAMPLES["telemetry.v2.avsc"])
def test_old_reader_reads_new_writer(sample: dict[str, Any]) -> None:
    v1, v2 = (load_schema_file(SCHEMAS / f"telemetry.v{n}.avsc") for n in (1, 2))
    body = encode_value(_match("telemetry.v2.avsc"), json.dumps(sample).encode(), TOPIC)[10:]
    old_fields = {k: v for k, v in sample.items() if k in v1.record_fields}
    assert _read(body, v2, v1) == {**old_fields, "device": DEVICE}


GOOD = {"seq": 1, "ts": 1.5, "value": 2.0}

BAD_PAYLOADS = [
    (b"{not json", None, "not valid JSON: Expecting property name enclosed in double quotes"),
    (b'{"seq": 1, "ts": 1.5, "value": "\xff"}', None, "not valid UTF-8"),
    (b"NaN", None, "not valid JSON"),
    (b"[1, 2]", None, "expected a JSON object (record io.mqttkafkasync.v1.Telemetry), got an array"),
    (b'{"ts": 1.5, "value": 2.0}', "seq", "is missing, and the schema gives it no default"),
    (b'{"seq": "1", "ts": 1.5, "value": 2.0}', "seq", 'expected long (an integer), got string "1"'),
    (b'{"seq": true, "ts": 1.5, "value": 2.0}', "seq", "expected long (an integer), got true"),
    (b'{"seq": 1.5, "ts": 1.5, "value": 2.0}', "seq", "expected long (an integer), got number 1.5"),
    (b'{"seq": 9223372036854775808, "ts": 1, "value": 2}', "seq", "out of range for long"),
    (b'{"seq": 1, "ts": null, "value": 2.0}', "ts", "expected double (a number), got null"),
    (b'{"seq": 1, "ts": 1.5, "value": 2.0, "unit": 7}', "unit", "expected string, got number 7"),
    (
        b'{"seq": 1, "ts": 1.5, "value": 2.0, "quality": "meh"}',
        "quality",
        "expected one of good, uncertain, bad",
    ),
    (b'{"seq": 1, "ts": 1.5, "value": 2.0, "colour": "red"}', "colour", "is not a field of record"),
    (
        b'{"device": "p09.d0009", "seq": 1, "ts": 1.5, "value": 2.0}',
        "device",
        'the payload has string "p09.d0009", the topic string "p01.d0001"',
    ),
]


@pytest.mark.parametrize(("payload", "field", "detail"), BAD_PAYLOADS)
def test_bad_payloads_are_rejected_with_the_field(payload: bytes, field: str | None, detail: str) -> None:
    with pytest.raises(DecodeError) as caught:
        encode_value(_match("telemetry.v2.avsc"), payload, TOPIC)
    error = caught.value
    assert error.reason == "bad-payload" and error.mqtt_topic == TOPIC
    assert error.field == field
    assert detail in error.detail
    assert error.detail.startswith(f"field {field!r}: ") if field else True
    assert error.detail.isascii(), "dlq.detail is a Kafka header"


@pytest.mark.parametrize(
    ("sample", "field", "detail"),
    [
        (
            {"command_id": "not-a-uuid", "name": "x", "ts": 1},
            "command_id",
            'expected a UUID string (8-4-4-4-12 hex digits), got string "not-a-uuid"',
        ),
        (
            {"command_id": str(uuid.uuid4()), "name": "x", "ts": 1, "params": {"p": [1]}},
            "params.p",
            "expected one of null, boolean, long, double, string, got an array",
        ),
        (
            {"command_id": str(uuid.uuid4()), "name": "x", "ts": 1, "params": []},
            "params",
            "expected an object (map), got an array",
        ),
    ],
)
def test_nested_problems_name_the_path(sample: dict[str, Any], field: str, detail: str) -> None:
    with pytest.raises(DecodeError) as caught:
        encode_value(_match("command.v1.avsc"), json.dumps(sample).encode(), TOPIC)
    assert (caught.value.field, caught.value.detail) == (field, f"field {field!r}: {detail}")


R1 = {"type": "record", "name": "R1", "fields": [{"name": "a", "type": "int"}]}
R2 = {"type": "record", "name": "R2", "fields": [{"name": "b", "type": "string"}]}


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        (["int", "double"], 5, 5),
        (["int", "double"], 5.5, 5.5),
        (["string", "long", "null"], None, None),
        ([R1, R2], {"b": "x"}, {"b": "x"}),  # the first record that fits
        ({"type": "bytes"}, "\u00ff\u0000a", b"\xff\x00a"),  # Avro's JSON encoding of bytes
        ({"type": "fixed", "name": "F", "size": 2}, "ab", b"ab"),
        ({"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}, "12.5", Decimal("12.50")),
        ({"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2}, 3, Decimal("3.00")),
        ({"type": "long", "logicalType": "timestamp-millis"}, 1718000000000, 1718000000000),
        ({"type": "array", "items": ["null", "int"]}, [1, None], [1, None]),
    ],
)
def test_json_values_avro_takes(schema: Any, value: Any, expected: Any) -> None:
    assert compile_converter(parse_schema(schema))(value) == expected


@pytest.mark.parametrize(
    ("schema", "value", "field", "problem"),
    [
        (["int", "double"], "5", None, 'expected one of int, double, got string "5"'),
        (
            [R1, R2],
            {"a": "x"},
            "a",
            'expected int (an integer), got string "x"',
        ),  # the closest branch's problem
        ({"type": "bytes"}, "\u20ac", None, "expected bytes (a string of characters U+0000..U+00FF)"),
        ({"type": "fixed", "name": "F", "size": 2}, "abc", None, "expected 2 bytes (fixed F), got 3"),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 5, "scale": 2},
            1.125,
            None,
            "more than 2 decimal places",
        ),
        (
            {"type": "bytes", "logicalType": "decimal", "precision": 3, "scale": 2},
            12.5,
            None,
            "more than 3 digits",
        ),
        ({"type": "array", "items": "int"}, [1, "x"], "[1]", 'expected int (an integer), got string "x"'),
        ({"type": "float"}, 1e39, None, "number 1e+39 is out of range for float"),
        ("int", 2**31, None, "number 2147483648 is out of range for int"),
    ],
)
def test_json_values_avro_refuses(schema: Any, value: Any, field: str | None, problem: str) -> None:
    with pytest.raises(Rejected) as caught:
        compile_converter(parse_schema(schema))(value)
    assert (caught.value.field, problem in caught.value.problem) == (field, True), caught.value


def test_unknown_fields_can_be_ignored() -> None:
    match = _match("telemetry.v1.avsc", unknown="ignore")
    value = encode_value(match, json.dumps({**GOOD, "colour": "red"}).encode(), TOPIC)
    assert _read(value[10:], load_schema_file(SCHEMAS / "telemetry.v1.avsc")) == {**GOOD, "device": DEVICE}


def test_topic_text_is_converted_to_the_field_type(tmp_path: Path) -> None:
    text = json.dumps(
        {
            "type": "record",
            "name": "Line",
            "fields": [
                {"name": "line", "type": ["null", "long"], "default": None},
                {"name": "active", "type": "boolean"},
                {"name": "v", "type": "double"},
            ],
        }
    )
    schema = parse_schema_text(text, "line")
    encoder = AvroEncoder(schema, single_object_header(schema.fingerprint), ("line", "active"))
    body = encoder(b'{"v": 1}', (("line", "42"), ("active", "true")))[10:]
    assert _read(body, schema) == {"line": 42, "active": True, "v": 1.0}
    with pytest.raises(DecodeError) as caught:
        encode_with(encoder, (("line", "4x2"), ("active", "true")), b'{"v": 1}', "t")
    assert caught.value.field == "line"
    assert caught.value.detail == "field 'line': the topic gives string \"4x2\", not a long"


def test_a_second_thread_writes_into_its_own_buffer() -> None:
    match = _match("telemetry.v1.avsc")
    expected = encode_value(match, json.dumps(GOOD).encode(), TOPIC)
    encoder = match.routes.encoders["r"]
    assert isinstance(encoder, AvroEncoder)
    with encoder._lock:  # as if the network thread were writing right now
        assert encode_value(match, json.dumps(GOOD).encode(), TOPIC) == expected


# -- Confluent wire format, against confluent-kafka's in-process mock registry ------------------------------


def _mock(**kwargs: Any) -> RegistrySettings:
    return RegistrySettings(url=f"mock://unit-{uuid.uuid4().hex}", **kwargs)


@pytest.mark.parametrize("schema_file", sorted(SAMPLES))
def test_registry_format_is_what_confluents_serializer_writes_and_its_deserializer_reads(
    schema_file: str,
) -> None:
    settings = _mock()
    match = _match(schema_file, registry_settings=settings, subject="out-value")
    schema = load_schema_file(SCHEMAS / schema_file)
    client = registry.client(settings)
    context = SerializationContext("out", MessageField.VALUE)
    for sample in SAMPLES[schema_file]:
        value = encode_value(match, json.dumps(sample).encode(), TOPIC)
        schema_id = client.get_latest_version("out-value").schema_id
        assert value[:5] == b"\x00" + struct.pack(">I", schema_id)
        record = expected_record(schema_file, sample, DEVICE)
        assert as_json_types(AvroDeserializer(client)(value, context)) == record
        serializer = AvroSerializer(
            client, schema.text, conf={"auto.register.schemas": False, "use.latest.version": True}
        )
        assert serializer(record, context) == value


def test_registry_lookup_without_auto_register_needs_the_schema_registered() -> None:
    settings = _mock(auto_register=False)
    with pytest.raises(SchemaRegistryError) as caught:
        _match("telemetry.v1.avsc", registry_settings=settings, subject="out-value")
    assert "could not look up" in str(caught.value) and not caught.value.retriable
    schema = load_schema_file(SCHEMAS / "telemetry.v1.avsc")
    registered = registry.client(settings).register_schema("out-value", Schema(schema.text, "AVRO"))
    match = _match("telemetry.v1.avsc", registry_settings=settings, subject="out-value")
    assert encode_value(match, json.dumps(GOOD).encode(), TOPIC)[1:5] == struct.pack(">I", registered)


def test_a_subject_names_the_latest_schema_of_the_registry() -> None:
    settings = _mock()
    client = registry.client(settings)
    for version in (1, 2):
        text = load_schema_file(SCHEMAS / f"telemetry.v{version}.avsc").text
        latest = client.register_schema("telemetry-value", Schema(text, "AVRO"))
    match = _match(
        "telemetry.v2.avsc", registry_settings=settings, subject="telemetry-value", from_registry=True
    )
    value = encode_value(match, json.dumps(GOOD).encode(), TOPIC)
    assert value[1:5] == struct.pack(">I", latest)
    assert (
        AvroDeserializer(client)(value, SerializationContext("out", MessageField.VALUE))["quality"] == "good"
    )


def test_fields_are_checked_against_a_schema_from_the_registry() -> None:
    settings = _mock()
    registry.client(settings).register_schema(
        "s",
        Schema(json.dumps({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}), "AVRO"),
    )
    wrong = r"value\.fields\.device: 'device' is not a field of record R"
    with pytest.raises(SchemaRegistryError, match=wrong):
        _match("telemetry.v1.avsc", registry_settings=settings, subject="s", from_registry=True)


@pytest.mark.parametrize(
    ("strategy", "confluent"),
    [
        ("TopicNameStrategy", topic_subject_name_strategy),
        ("RecordNameStrategy", record_subject_name_strategy),
        ("TopicRecordNameStrategy", topic_record_subject_name_strategy),
    ],
)
def test_subject_names_are_confluents(strategy: Any, confluent: Any) -> None:
    settings = RegistrySettings(url="http://r:8081", subject_strategy=strategy)
    context = SerializationContext("telemetry", MessageField.VALUE)
    name = "io.mqttkafkasync.v1.Telemetry"
    assert settings.subject("telemetry", name) == confluent(context, name)
