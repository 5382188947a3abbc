"""Avro schemas from ``.avsc`` files, parsed once, with what the wire formats need.

Every schema is read, parsed by fastavro and checked for what fastavro lets through but Java's
parser refuses (illegal names, a field named twice, a union default that does not fit the union's
first branch). Then its parsing canonical form and CRC-64-AVRO fingerprint (Avro specification,
"Schema Fingerprints"; fastavro computes it) are kept, for single-object encoding.

Versions of one schema sit side by side as ``<name>.v<N>.avsc`` (``telemetry.v1.avsc``,
``telemetry.v2.avsc``); :func:`check_evolution` checks that each version can read what the one
before it wrote.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fastavro import parse_schema
from fastavro.schema import SchemaParseException, UnknownType, fingerprint, to_parsing_canonical_form

from mqtt_kafka_sync.codec.compat import backward_problems
from mqtt_kafka_sync.errors import SyncError

VERSIONED = re.compile(r"(?P<family>.+)\.v(?P<version>[1-9][0-9]*)\.avsc")
"""``<family>.v<N>.avsc``: version ``N`` of a schema; other ``.avsc`` names have no versions."""
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NAMED = ("record", "error", "enum", "fixed")

ParsedSchema = Any
"""What fastavro's ``parse_schema`` returns: a dict, list or str with full names expanded."""


class SchemaFileError(SyncError):
    """A schema file that cannot be read, parsed, or evolved as it is; names the file and the field."""

    def __init__(self, path: str, problem: str, *, field: str | None = None) -> None:
        self.path = path
        self.problem = problem
        self.field = field
        super().__init__(f"{path}: field {field}: {problem}" if field else f"{path}: {problem}")


@dataclass(frozen=True, eq=False)
class AvroSchema:
    """One parsed schema. ``text`` is the schema as JSON (what a registry is sent)."""

    source: str
    """The file it came from, or ``subject <name>`` for a schema fetched from a registry."""
    text: str
    parsed: ParsedSchema = field(repr=False)
    fullname: str
    """Full name of the top-level named type (``io.mqttkafkasync.v1.Telemetry``), else its type."""
    canonical: str
    """Parsing canonical form: what the fingerprint covers (no docs, defaults or logical types)."""
    fingerprint: bytes
    """CRC-64-AVRO of ``canonical``, 8 bytes little-endian, as single-object encoding writes it."""

    @property
    def record_fields(self) -> dict[str, ParsedSchema]:
        """Field name -> type of a record schema; empty for other schemas."""
        if isinstance(self.parsed, dict) and self.parsed.get("type") in ("record", "error"):
            return {f["name"]: f["type"] for f in self.parsed["fields"]}
        return {}


def parse_schema_text(text: str, source: str) -> AvroSchema:
    """Parse and check one schema; raises :class:`SchemaFileError`."""
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SchemaFileError(
            source, f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    try:
        parsed = parse_schema(raw)
    except (SchemaParseException, UnknownType) as exc:
        raise SchemaFileError(source, f"not a valid Avro schema: {exc}") from None
    except (TypeError, KeyError, AttributeError, ValueError) as exc:  # fastavro on malformed shapes
        raise SchemaFileError(source, f"not a valid Avro schema: {type(exc).__name__} {exc}") from None
    first = next(lint(parsed), None)
    if first is not None:
        raise SchemaFileError(source, first[1], field=first[0])
    canonical = to_parsing_canonical_form(parsed)
    return AvroSchema(
        source=source,
        text=json.dumps(raw, separators=(",", ":"), ensure_ascii=False),
        parsed=parsed,
        fullname=_fullname(parsed),
        canonical=canonical,
        fingerprint=bytes.fromhex(fingerprint(canonical, "CRC-64-AVRO")),
    )


def load_schema_file(path: Path) -> AvroSchema:
    """Read and parse ``path``; raises :class:`SchemaFileError`."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SchemaFileError(str(path), f"cannot read: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise SchemaFileError(str(path), f"not UTF-8 text at byte {exc.start}") from None
    return parse_schema_text(text, str(path))


def schema_versions(path: Path) -> list[Path]:
    """Every version of the schema ``path`` is a version of, oldest first; ``[path]`` if unversioned."""
    found = VERSIONED.fullmatch(path.name)
    if found is None:
        return [path]
    family = found["family"]
    versions = {
        int(m["version"]): p
        for p in path.parent.glob(f"{glob_escape(family)}.v*.avsc")
        if (m := VERSIONED.fullmatch(p.name)) is not None and m["family"] == family
    }
    return [versions[v] for v in sorted(versions)]


def check_evolution(path: Path) -> list[SchemaFileError]:
    """Problems with ``path`` and the other versions of its schema: each must parse, and each must
    read records written with the version before it (backward compatible)."""
    problems: list[SchemaFileError] = []
    previous: AvroSchema | None = None
    for version in schema_versions(path):
        try:
            current = load_schema_file(version)
        except SchemaFileError as exc:
            problems.append(exc)
            previous = None
            continue
        if previous is not None:
            older = Path(previous.source).name
            for where, problem in backward_problems(current.parsed, previous.parsed):
                text = f"cannot read records written with {older}: {problem}"
                problems.append(SchemaFileError(current.source, text, field=where))
        previous = current
    return problems


class SchemaStore:
    """The schemas of a folder by fingerprint, to decode single-object records (``tail``)."""

    def __init__(self, schemas: list[AvroSchema]) -> None:
        self._by_fingerprint = {s.fingerprint: s for s in schemas}

    @classmethod
    def from_dir(cls, folder: Path) -> tuple[SchemaStore, list[SchemaFileError]]:
        """Every ``*.avsc`` in ``folder``; files that do not load are returned as problems."""
        schemas: list[AvroSchema] = []
        problems: list[SchemaFileError] = []
        for path in sorted(folder.glob("*.avsc")):
            try:
                schemas.append(load_schema_file(path))
            except SchemaFileError as exc:
                problems.append(exc)
        return cls(schemas), problems

    def find(self, fingerprint_bytes: bytes) -> AvroSchema | None:
        return self._by_fingerprint.get(fingerprint_bytes)

    def __len__(self) -> int:
        return len(self._by_fingerprint)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


def _fullname(parsed: ParsedSchema) -> str:
    if isinstance(parsed, dict):
        return str(parsed.get("name") or parsed.get("type"))
    return "union" if isinstance(parsed, list) else str(parsed)


# -- lint: what Java's Schema.Parser refuses and fastavro accepts -------------------------------------


def lint(parsed: ParsedSchema) -> Iterator[tuple[str, str]]:
    """``(field path, problem)`` for each problem, in schema order."""
    yield from _lint(parsed, "", {})


def _lint(schema: ParsedSchema, path: str, names: dict[str, ParsedSchema]) -> Iterator[tuple[str, str]]:
    if isinstance(schema, list):
        for branch in schema:
            yield from _lint(branch, path, names)
        return
    if not isinstance(schema, dict):
        return
    kind = schema.get("type")
    if kind in _NAMED:
        fullname = str(schema.get("name", ""))
        bad = [part for part in fullname.split(".") if not _NAME.fullmatch(part)]
        if bad:
            yield path or fullname, f"{fullname!r} is not a valid Avro name ([A-Za-z_][A-Za-z0-9_]* per part)"
        names[fullname] = schema
    if kind in ("record", "error"):
        yield from _lint_fields(schema.get("fields", []), path, names)
    elif kind == "array":
        yield from _lint(schema["items"], f"{path}[]", names)
    elif kind == "map":
        yield from _lint(schema["values"], f"{path}{{}}", names)


def _lint_fields(
    fields: list[dict[str, Any]], path: str, names: dict[str, ParsedSchema]
) -> Iterator[tuple[str, str]]:
    seen: set[str] = set()
    for item in fields:
        name = item["name"]
        where = f"{path}.{name}" if path else name
        if not _NAME.fullmatch(name):
            yield where, f"{name!r} is not a valid Avro field name"
        if name in seen:
            yield where, "is declared twice"
        seen.add(name)
        yield from _lint(item["type"], where, names)
        first = item["type"][0] if isinstance(item["type"], list) and item["type"] else None
        if "default" in item and first is not None and not default_fits(item["default"], first, names):
            problem = (
                f"default {json.dumps(item['default'])} does not fit the union's first branch "
                f"{_type_name(first)} (the Avro specification requires it to)"
            )
            yield where, problem


def default_fits(value: object, schema: ParsedSchema, names: dict[str, ParsedSchema]) -> bool:
    """Whether ``value`` (as written in JSON) is a valid default for ``schema``."""
    if isinstance(schema, str) and schema in names:
        schema = names[schema]
    if isinstance(schema, list):
        return bool(schema) and default_fits(value, schema[0], names)
    kind = schema.get("type") if isinstance(schema, dict) else schema
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    simple: dict[str, bool] = {
        "null": value is None,
        "boolean": isinstance(value, bool),
        "int": isinstance(value, int) and not isinstance(value, bool),
        "long": isinstance(value, int) and not isinstance(value, bool),
        "float": is_number,
        "double": is_number,
        "string": isinstance(value, str),
        "bytes": isinstance(value, str),
        "fixed": isinstance(value, str),
        "map": isinstance(value, dict),
        "array": isinstance(value, list),
    }
    if kind in simple:
        return simple[kind]
    if kind == "enum":
        return isinstance(value, str) and value in schema["symbols"]
    if kind in ("record", "error"):
        return isinstance(value, dict)
    return True


def _type_name(schema: ParsedSchema) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)
