"""The ``avro`` value format: a JSON payload in, a framed Avro record out.

One :class:`AvroEncoder` per route, built when the task starts: the schema is parsed and the JSON
converter compiled once, and with a registry the schema id is resolved once. Per message:
``json.loads``, fill fields from the MQTT topic, check and convert (:mod:`.json_avro`), then
fastavro's ``schemaless_writer`` into a reused buffer after the wire-format header (:mod:`.wire`).
"""

from __future__ import annotations

import difflib
import io
import math
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from fastavro import schemaless_writer

from mqtt_kafka_sync.codec.compat import named_types
from mqtt_kafka_sync.codec.exceptions import Rejected
from mqtt_kafka_sync.codec.json_avro import UnknownFields, compile_converter, describe
from mqtt_kafka_sync.codec.schema import AvroSchema, parse_schema_text
from mqtt_kafka_sync.codec.values import Fields, parse_json
from mqtt_kafka_sync.codec.wire import registry_header, single_object_header
from mqtt_kafka_sync.errors import SchemaRegistryError

if TYPE_CHECKING:
    from mqtt_kafka_sync.codec.registry_settings import RegistrySettings

TextParser = Callable[[str], object]
_INTEGER = re.compile(r"[+-]?[0-9]+")
_MISSING = object()


class AvroEncoder:
    """Encodes one route's payloads; safe to call from several threads (the buffer is taken by one
    at a time, and a second thread writes into a buffer of its own)."""

    __slots__ = ("_buffer", "_convert", "_header", "_lock", "_parsed", "_parsers", "_record", "schema")

    def __init__(
        self,
        schema: AvroSchema,
        header: bytes,
        field_names: tuple[str, ...] = (),
        unknown_fields: UnknownFields = "reject",
    ) -> None:
        self.schema = schema
        self._parsed = schema.parsed
        self._header = header
        self._convert = compile_converter(schema.parsed, unknown_fields)
        self._parsers = {name: field_text_parser(schema, name) for name in field_names}
        self._record = schema.fullname
        self._buffer = io.BytesIO()
        self._lock = threading.Lock()

    @property
    def header(self) -> bytes:
        return self._header

    def __call__(self, payload: bytes, fields: Fields) -> bytes:
        datum = parse_json(payload)
        if fields:
            if type(datum) is not dict:
                raise Rejected(f"expected a JSON object (record {self._record}), got {describe(datum)}")
            for name, text in fields:
                value = self._parsers[name](text)
                given = datum.get(name, _MISSING)
                if given is _MISSING:
                    datum[name] = value
                elif given != value:
                    raise Rejected(f"the payload has {describe(given)}, the topic {describe(value)}", name)
        return self._write(self._convert(datum))

    def _write(self, datum: Any) -> bytes:
        if not self._lock.acquire(blocking=False):
            return self._write_into(io.BytesIO(), datum)
        try:
            buffer = self._buffer
            buffer.seek(0)
            buffer.truncate()
            return self._write_into(buffer, datum)
        finally:
            self._lock.release()

    def _write_into(self, buffer: io.BytesIO, datum: Any) -> bytes:
        buffer.write(self._header)
        try:
            schemaless_writer(buffer, self._parsed, datum)
        except (ValueError, TypeError, OverflowError) as exc:  # the converter should have caught it
            raise Rejected(f"cannot be written as {self._record}: {exc}") from None
        return buffer.getvalue()


class AvroSettings(Protocol):
    """What an Avro route's encoder needs (``config.model.AvroValueConfig`` has it)."""

    @property
    def schema(self) -> AvroSchema | None: ...
    @property
    def subject(self) -> str | None: ...
    @property
    def fields(self) -> tuple[tuple[str, str], ...]: ...
    @property
    def unknown_fields(self) -> UnknownFields: ...
    @property
    def registry(self) -> RegistrySettings | None: ...


def avro_encoder(route: str, value: AvroSettings) -> AvroEncoder:
    """The encoder of the ``avro`` route named ``route``, with its schema id from the registry when
    there is one; raises :class:`SchemaRegistryError`."""
    names = tuple(name for name, _ in value.fields)
    if value.registry is None:
        if value.schema is None:
            raise ValueError(f"route {route!r}: a schema from a registry needs a registry")
        return AvroEncoder(
            value.schema, single_object_header(value.schema.fingerprint), names, value.unknown_fields
        )
    from mqtt_kafka_sync.codec.registry import latest_schema, schema_id  # noqa: PLC0415 - a heavy import

    if value.subject is None:
        raise ValueError(f"route {route!r}: no registry subject")
    schema = value.schema
    if schema is None:
        found_id, text = latest_schema(value.registry, value.subject)
        schema = parse_schema_text(text, f"subject {value.subject}")
        for name in names:
            try:
                field_text_parser(schema, name)
            except ValueError as exc:
                raise SchemaRegistryError(
                    f"route {route!r}: value.fields.{name}: {exc} (latest version of subject "
                    f"{value.subject!r}, id {found_id})"
                ) from None
    else:
        found_id = schema_id(value.registry, value.subject, schema)
    return AvroEncoder(schema, registry_header(found_id), names, value.unknown_fields)


def field_text_parser(schema: AvroSchema, name: str) -> TextParser:
    """How text from the MQTT topic becomes record field ``name``'s value; raises ValueError when
    ``name`` is not a field, or not one text can fill. The parser raises :class:`Rejected`."""
    fields = schema.record_fields
    if not fields:
        raise ValueError(f"schema {schema.fullname} is not a record, so it has no field {name!r}")
    if name not in fields:
        near = difflib.get_close_matches(name, list(fields), n=1)
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise ValueError(f"{name!r} is not a field of record {schema.fullname}{hint}")
    kind = _field_kind(fields[name], named_types(schema.parsed))
    parser = _TEXT_PARSERS.get(kind)
    if parser is None:
        raise ValueError(f"field {name!r} is of type {kind}, which the topic's text cannot fill")

    def parse(text: str) -> object:
        try:
            return parser(text)
        except ValueError:
            raise Rejected(f"the topic gives {describe(text)}, not a {kind}", name) from None

    return parse


def _field_kind(schema: Any, named: dict[str, Any]) -> str:
    if isinstance(schema, list):
        rest = [b for b in schema if b != "null"]
        return _field_kind(rest[0], named) if len(rest) == 1 else "union"
    if isinstance(schema, str):
        schema = named.get(schema, schema)
    return str(schema.get("type")) if isinstance(schema, dict) else str(schema)


def _integer(text: str) -> int:
    if not _INTEGER.fullmatch(text):
        raise ValueError(text)
    return int(text)


def _number(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(text)
    return number


def _boolean(text: str) -> bool:
    if text not in ("true", "false"):
        raise ValueError(text)
    return text == "true"


_TEXT_PARSERS: dict[str, TextParser] = {
    "string": str,
    "enum": str,
    "int": _integer,
    "long": _integer,
    "float": _number,
    "double": _number,
    "boolean": _boolean,
}
