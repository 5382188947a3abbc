"""Turn an MQTT payload into a Kafka record value, per route ``value.format``.

Each route has an :data:`Encoder`: ``bytes`` and ``json`` share the ones in :data:`ENCODERS`; an
``avro`` route gets its own (:mod:`mqtt_kafka_sync.codec.avro`), built with its schema when the
task starts. An encoder takes the payload and the record fields the route fills from the MQTT
topic, and raises :class:`Rejected` with a short reason, which :func:`encode_value` turns into a
:class:`~mqtt_kafka_sync.errors.DecodeError` (the message goes to the dead-letter topic).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Literal

import orjson

from mqtt_kafka_sync.codec.exceptions import Rejected
from mqtt_kafka_sync.errors import DecodeError

ValueFormat = Literal["bytes", "json", "avro"]

__all__ = ["ENCODERS", "Encoder", "Fields", "Rejected", "encode_value", "parse_json"]

Fields = tuple[tuple[str, str], ...]
"""``(record field, text)`` pairs a route renders from the MQTT topic (``value.fields.*``)."""
Encoder = Callable[[bytes, Fields], bytes]


def _bytes(payload: bytes, fields: Fields) -> bytes:
    return payload


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise Rejected(f"not valid JSON: number {text} is out of range")
    return number


def _no_constant(name: str) -> object:
    raise Rejected(f"not valid JSON: {name} is not a JSON value")


_ABOVE_64_BITS = 1.8e19
"""orjson reads integer literals from -2**63 to 2**64 - 1 exactly and any beyond as floats: above this
(2**64 is 1.84e19) on the positive side, and at or below -2**63 on the negative side (a literal
just below -2**63 rounds to exactly -2**63.0)."""
_BELOW_64_BITS = -float(2**63)


def _fits_64_bits(value: object) -> bool:
    """False when a float is large enough to be an integer literal that orjson rounded."""
    kind = type(value)
    if kind is float:
        return _BELOW_64_BITS < value < _ABOVE_64_BITS  # type: ignore[operator]
    if kind is dict:
        return all(map(_fits_64_bits, value.values()))  # type: ignore[attr-defined]
    if kind is list:
        return all(map(_fits_64_bits, value))  # type: ignore[call-overload]
    return True


def _json(payload: bytes, fields: Fields) -> bytes:
    """Parse strictly (UTF-8, no NaN/Infinity) and re-encode compactly.

    orjson is the fast path (several times faster than the standard library); whatever it refuses,
    and any payload with a number it may have rounded, goes through the standard parser, which keeps
    integers of any size and lone surrogate escapes and words the reason when the payload really is
    not JSON.
    """
    try:
        value = orjson.loads(payload)
        if _fits_64_bits(value):
            return orjson.dumps(value)
    except (orjson.JSONDecodeError, orjson.JSONEncodeError, RecursionError):
        pass
    return _json_stdlib(payload)


def _json_stdlib(payload: bytes) -> bytes:
    value = _parse_stdlib(payload)
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800": keep it escaped
        return json.dumps(value, separators=(",", ":")).encode("ascii")


def parse_json(payload: bytes) -> object:
    """The JSON value of ``payload``, parsed strictly (UTF-8, no NaN/Infinity); raises :class:`Rejected`.

    orjson first; what it refuses goes through the standard parser, which words the reason. An
    integer beyond 64 bits comes back as a float (no Avro integer type holds it anyway).
    """
    try:
        return orjson.loads(payload)
    except (orjson.JSONDecodeError, RecursionError):
        return _parse_stdlib(payload)


def _parse_stdlib(payload: bytes) -> object:
    try:
        return json.loads(payload.decode("utf-8"), parse_float=_finite, parse_constant=_no_constant)
    except UnicodeDecodeError as exc:
        raise Rejected(f"not valid UTF-8: {exc.reason} at byte {exc.start}") from None
    except json.JSONDecodeError as exc:
        raise Rejected(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:
        raise Rejected("not valid JSON: nested too deeply") from None
    except Rejected:
        raise
    except ValueError as exc:  # e.g. an integer longer than sys.get_int_max_str_digits()
        raise Rejected(f"not valid JSON: {exc}") from None


ENCODERS: dict[ValueFormat, Encoder] = {"bytes": _bytes, "json": _json}
"""The encoders of the formats without per-route settings, shared by their routes."""


def encode_value(encoder: Encoder, fields: Fields, payload: bytes, mqtt_topic: str) -> bytes:
    """The Kafka record value for ``payload``; raises DecodeError when the route's format rejects it."""
    try:
        return encoder(payload, fields)
    except Rejected as exc:
        raise DecodeError(str(exc), mqtt_topic=mqtt_topic, field=exc.field) from None
