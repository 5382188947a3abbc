"""Decode a Kafka record value whatever its format, for people (``mqtt-kafka-sync tail``) and tests.

Avro values are recognised by their prefix (:mod:`.wire`): single-object records are decoded with
the schema whose fingerprint they carry, found among local ``.avsc`` files; registry records with
the schema their id names, fetched from the registry. Anything else is shown as JSON if it parses,
else as UTF-8 text, else as bytes.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastavro import schemaless_reader

from mqtt_kafka_sync.codec.schema import AvroSchema, SchemaStore
from mqtt_kafka_sync.codec.wire import split
from mqtt_kafka_sync.errors import SyncError

Kind = Literal["avro", "json", "text", "bytes", "null"]
SchemaById = Callable[[int], AvroSchema]


@dataclass(frozen=True)
class Decoded:
    kind: Kind
    label: str
    """How the value was read, e.g. ``avro io.mqttkafkasync.v1.Telemetry (registry id 3)``."""
    value: object
    """The decoded value; None when it could not be decoded (``label`` says why)."""
    schema: AvroSchema | None = None


class ValueDecoder:
    """Decodes values with the schemas of ``store`` and, when given, ``by_id`` (a registry)."""

    def __init__(self, store: SchemaStore, by_id: SchemaById | None = None) -> None:
        self._store = store
        self._by_id = by_id
        self._fetched: dict[int, AvroSchema | str] = {}

    def decode(self, value: bytes | None) -> Decoded:
        if value is None:
            return Decoded("null", "null (no value)", None)
        framed = split(value)
        if framed is None:
            return _plain(value)
        schema: AvroSchema | None
        if framed.fingerprint is not None:
            schema = self._store.find(framed.fingerprint)
            where = f"fingerprint {framed.fingerprint.hex()}"
            if schema is None:
                note = (
                    f"avro single-object, {where}: no schema in the schema folder has it ({len(value)} bytes)"
                )
                return Decoded("avro", note, None)
            where += f", {schema.source}"
        else:
            assert framed.schema_id is not None
            where = f"registry id {framed.schema_id}"
            found = self._schema_by_id(framed.schema_id)
            if isinstance(found, str):
                return Decoded("avro", f"avro, {where}: {found} ({len(value)} bytes)", None)
            schema = found
        try:
            datum = schemaless_reader(io.BytesIO(framed.body), schema.parsed, None)
        except (EOFError, ValueError, TypeError, IndexError) as exc:
            note = f"avro {schema.fullname} ({where}): body does not decode: {type(exc).__name__} {exc}"
            return Decoded("avro", note, None, schema)
        return Decoded("avro", f"avro {schema.fullname} ({where})", datum, schema)

    def _schema_by_id(self, schema_id: int) -> AvroSchema | str:
        if schema_id not in self._fetched:
            if self._by_id is None:
                return "no registry given to fetch the schema from (--registry)"
            try:
                self._fetched[schema_id] = self._by_id(schema_id)
            except SyncError as exc:
                return str(exc)  # not cached: the registry may answer next time
        return self._fetched[schema_id]


def _plain(value: bytes) -> Decoded:
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError:
        shown = value[:64].hex() + ("..." if len(value) > 64 else "")
        return Decoded("bytes", f"bytes ({len(value)})", shown)
    try:
        return Decoded("json", "json", json.loads(text))
    except ValueError:
        return Decoded("text", "text", text)
