"""The project's schemas, the fingerprint single-object encoding uses, lint, and compatibility checks."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest
from fastavro import parse_schema

from mqtt_kafka_sync.codec.compat import backward_problems
from mqtt_kafka_sync.codec.schema import (
    SchemaFileError,
    SchemaStore,
    check_evolution,
    load_schema_file,
    parse_schema_text,
    schema_versions,
)
from tests.avro_samples import SAMPLES, SCHEMAS

NAMESPACE = "io.mqttkafkasync.v1"

# -- the project's schemas ----------------------------------------------------------------------------


def test_every_schema_file_has_samples_and_the_four_kinds_are_there() -> None:
    files = sorted(p.name for p in SCHEMAS.glob("*.avsc"))
    assert files == sorted(SAMPLES)
    names = {load_schema_file(SCHEMAS / f).fullname for f in files}
    assert names == {f"{NAMESPACE}.{n}" for n in ("Telemetry", "DeviceStatus", "Command", "CommandAck")}


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.avsc")), ids=lambda p: p.name)
def test_project_schema_is_namespaced_documented_and_evolves_compatibly(path: Path) -> None:
    raw = json.loads(path.read_text())
    assert raw["namespace"] == NAMESPACE
    undocumented = [where for where, node in _named_nodes(raw, raw["name"]) if not node.get("doc")]
    assert not undocumented, f"no doc: {undocumented}"
    assert check_evolution(path) == []


def _named_nodes(node: Any, where: str) -> list[tuple[str, dict[str, Any]]]:
    """The record itself, every field, and every named type inside, with where they are."""
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, list):
        for branch in node:
            found += _named_nodes(branch, where)
    elif isinstance(node, dict):
        if node.get("type") in ("record", "enum", "fixed"):
            found.append((where, node))
        for field in node.get("fields", []):
            found.append((f"{where}.{field['name']}", field))
            found += _named_nodes(field["type"], f"{where}.{field['name']}")
    return found


def test_telemetry_v2_adds_defaulted_fields_to_v1() -> None:
    v1 = load_schema_file(SCHEMAS / "telemetry.v1.avsc")
    v2 = load_schema_file(SCHEMAS / "telemetry.v2.avsc")
    assert v1.fullname == v2.fullname
    added = set(v2.record_fields) - set(v1.record_fields)
    assert added == {"unit", "quality"}
    assert backward_problems(v2.parsed, v1.parsed) == []  # v2 reads v1
    assert backward_problems(v1.parsed, v2.parsed) == []  # and v1 reads v2 (forward compatible)
    assert v1.fingerprint != v2.fingerprint
    assert schema_versions(SCHEMAS / "telemetry.v2.avsc") == [
        SCHEMAS / "telemetry.v1.avsc",
        SCHEMAS / "telemetry.v2.avsc",
    ]


# -- CRC-64-AVRO fingerprints ---------------------------------------------------------------------------

# From the Avro specification's test data (share/test/data/schema-tests.txt): canonical form and the
# fingerprint as Java's SchemaNormalization.parsingFingerprint64 returns it (a signed long).
SPEC_VECTORS = [
    ('"null"', '"null"', 7195948357588979594),
    ('{"type":"boolean"}', '"boolean"', -6970731678124411036),
    ('"long"', '"long"', -3434872931120570953),
    ('"string"', '"string"', -8142146995180207161),
    ('[ "int" , {"type":"boolean"} ]', '["int","boolean"]', 5392556393470105090),
    (
        '{"fields":[], "type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[]}',
        -4824392279771201922,
    ),
    (
        '{"fields":[], "type":"record", "name":"foo", "namespace":"x.y"}',
        '{"name":"x.y.foo","type":"record","fields":[]}',
        5916914534497305771,
    ),
    (
        '{"namespace":"x.y.z", "type":"enum", "name":"foo", "doc":"foo bar", "symbols":["A1", "A2"]}',
        '{"name":"x.y.z.foo","type":"enum","symbols":["A1","A2"]}',
        -4448647247586288245,
    ),
    (
        '{ "fields":[{"type":"boolean", "aliases":[], "name":"f1", "default":true},'
        '{"order":"descending","name":"f2","doc":"Hello","type":"int"}], "type":"record", "name":"foo"}',
        '{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"},{"name":"f2","type":"int"}]}',
        -4860222112080293046,
    ),
]


def _crc64_avro(data: bytes) -> int:
    """The specification's algorithm, written out independently of fastavro."""
    empty = 0xC15D213AA4D7A795
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (empty & -(fp & 1))
        table.append(fp)
    fp = empty
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize(("text", "canonical", "java_long"), SPEC_VECTORS)
def test_fingerprint_matches_the_avro_specification(text: str, canonical: str, java_long: int) -> None:
    schema = parse_schema_text(text, "spec")
    assert schema.canonical == canonical
    little_endian = struct.pack("<q", java_long)  # single-object encoding writes it little-endian
    assert schema.fingerprint == little_endian
    assert _crc64_avro(canonical.encode()) == struct.unpack("<Q", little_endian)[0]


@pytest.mark.parametrize("path", sorted(SCHEMAS.glob("*.avsc")), ids=lambda p: p.name)
def test_project_schema_fingerprint_is_crc64_of_its_canonical_form(path: Path) -> None:
    schema = load_schema_file(path)
    assert schema.fingerprint == struct.pack("<Q", _crc64_avro(schema.canonical.encode()))
    assert "doc" not in schema.canonical and "default" not in schema.canonical


def test_schema_store_finds_schemas_by_fingerprint(tmp_path: Path) -> None:
    store, problems = SchemaStore.from_dir(SCHEMAS)
    assert problems == [] and len(store) == len(SAMPLES)
    v2 = load_schema_file(SCHEMAS / "telemetry.v2.avsc")
    found = store.find(v2.fingerprint)
    assert found is not None and found.source.endswith("telemetry.v2.avsc")
    assert store.find(b"\x00" * 8) is None
    (tmp_path / "broken.avsc").write_text("{")
    _, problems = SchemaStore.from_dir(tmp_path)
    assert [p.path for p in problems] == [str(tmp_path / "broken.avsc")]


# -- what a schema file can get wrong ---------------------------------------------------------------


def _record(*fields: dict[str, Any], name: str = "T") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "n", "fields": list(fields)})


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("{", None, "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        (_record({"name": "x", "type": "Nope"}), None, "not a valid Avro schema"),
        (_record({"name": "x", "type": "int", "default": "one"}), None, "Default value <one> must match"),
        (_record({"name": "x", "type": "int"}, {"name": "x", "type": "long"}), "x", "is declared twice"),
        (_record({"name": "x-y", "type": "int"}), "x-y", "not a valid Avro field name"),
        (_record(name="T-1"), "n.T-1", "not a valid Avro name"),
        (
            _record({"name": "u", "type": ["null", "string"], "default": "x"}),
            "u",
            'default "x" does not fit the union\'s first branch null',
        ),
        (
            _record(
                {
                    "name": "r",
                    "type": {
                        "type": "record",
                        "name": "In",
                        "fields": [{"name": "a", "type": "int"}, {"name": "a", "type": "int"}],
                    },
                }
            ),
            "r.a",
            "is declared twice",
        ),
    ],
)
def test_schema_file_problems_name_the_field(
    tmp_path: Path, text: str, field: str | None, problem: str
) -> None:
    path = tmp_path / "s.avsc"
    path.write_text(text)
    with pytest.raises(SchemaFileError) as caught:
        load_schema_file(path)
    assert caught.value.path == str(path)
    assert caught.value.field == field
    assert problem in caught.value.problem


def _parsed(text: str) -> Any:
    return parse_schema(json.loads(text))


BASE: list[dict[str, Any]] = [
    {"name": "a", "type": "int"},
    {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X", "Y"]}},
]


@pytest.mark.parametrize(
    ("new_fields", "problems"),
    [
        ([*BASE, {"name": "b", "type": "string", "default": ""}], []),  # added with a default
        ([BASE[1]], []),  # removed a field: readers ignore it
        ([{"name": "a", "type": "long"}, BASE[1]], []),  # int -> long is a promotion
        ([{"name": "a2", "type": "int", "aliases": ["a"]}, BASE[1]], []),  # renamed with an alias
        ([{"name": "a", "type": ["null", "int"], "default": None}, BASE[1]], []),  # int -> nullable int
        (
            [*BASE, {"name": "b", "type": "string"}],
            [("b", "was added without a default, so records that lack it cannot be read")],
        ),
        ([{"name": "a", "type": "string"}, BASE[1]], [("a", "type changed from int to string")]),
        (
            [BASE[0], {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X"]}}],
            [("e", "enum symbols Y were removed and the enum has no default")],
        ),
        (
            [BASE[0], {"name": "e", "type": {"type": "enum", "name": "E", "symbols": ["X"], "default": "X"}}],
            [],
        ),
        (
            [BASE[0], {"name": "e", "type": {"type": "enum", "name": "F", "symbols": ["X", "Y"]}}],
            [("e", "name changed from n.E to n.F")],
        ),
    ],
)
def test_backward_compatibility_problems(
    new_fields: list[dict[str, Any]], problems: list[tuple[str, str]]
) -> None:
    old = _parsed(_record(*BASE))
    new = _parsed(_record(*new_fields))
    assert backward_problems(new, old) == problems


def test_a_union_losing_a_branch_is_reported() -> None:
    old = _parsed(_record({"name": "v", "type": ["null", "int", "string"]}))
    new = _parsed(_record({"name": "v", "type": ["null", "int"]}))
    assert backward_problems(new, old) == [("v", "string is not one of the union's branches [null, int]")]


def test_check_evolution_names_the_new_file_the_old_one_and_the_field(tmp_path: Path) -> None:
    (tmp_path / "reading.v1.avsc").write_text(_record(*BASE))
    (tmp_path / "reading.v2.avsc").write_text(_record(*BASE, {"name": "b", "type": "string"}))
    (tmp_path / "reading.v10.avsc").write_text(_record(*BASE))  # versions sort as numbers
    (tmp_path / "other.v1.avsc").write_text("{")  # another family: not checked with this one
    problems = check_evolution(tmp_path / "reading.v2.avsc")
    assert [(p.path, p.field) for p in problems] == [(str(tmp_path / "reading.v2.avsc"), "b")]
    assert problems[0].problem.startswith("cannot read records written with reading.v1.avsc: ")
    assert str(problems[0]).startswith(f"{tmp_path / 'reading.v2.avsc'}: field b: cannot read records")
    assert [p.name for p in schema_versions(tmp_path / "reading.v1.avsc")] == [
        "reading.v1.avsc",
        "reading.v2.avsc",
        "reading.v10.avsc",
    ]
