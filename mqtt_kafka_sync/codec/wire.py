"""The two Avro wire formats, told apart by their first bytes.

============================  ==================================================================
Confluent Schema Registry     ``0x00``, schema id (4 bytes, big-endian), Avro binary body
Avro single-object encoding   ``0xC3 0x01``, CRC-64-AVRO fingerprint of the writer schema's
                              parsing canonical form (8 bytes, little-endian), Avro binary body
============================  ==================================================================

Neither prefix can start a JSON text, so :func:`split` also tells Avro from JSON and raw bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

REGISTRY_MAGIC = b"\x00"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
REGISTRY_HEADER_SIZE = 5
SINGLE_OBJECT_HEADER_SIZE = 10


def registry_header(schema_id: int) -> bytes:
    return REGISTRY_MAGIC + schema_id.to_bytes(4, "big")


def single_object_header(fingerprint: bytes) -> bytes:
    if len(fingerprint) != 8:
        raise ValueError(f"a CRC-64-AVRO fingerprint has 8 bytes, got {len(fingerprint)}")
    return SINGLE_OBJECT_MAGIC + fingerprint


@dataclass(frozen=True)
class Framed:
    """A record value taken apart: which format, which schema, and the Avro body."""

    kind: Literal["registry", "single-object"]
    schema_id: int | None
    fingerprint: bytes | None
    body: bytes


def split(value: bytes) -> Framed | None:
    """The Avro framing of ``value``, or None when it has neither prefix (JSON, text, raw bytes)."""
    if value[:2] == SINGLE_OBJECT_MAGIC and len(value) >= SINGLE_OBJECT_HEADER_SIZE:
        return Framed("single-object", None, value[2:10], value[10:])
    if value[:1] == REGISTRY_MAGIC and len(value) >= REGISTRY_HEADER_SIZE:
        return Framed("registry", int.from_bytes(value[1:5], "big"), None, value[5:])
    return None
