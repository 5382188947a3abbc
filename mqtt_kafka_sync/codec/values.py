"""Turn an MQTT payload into a Kafka record value, per route ``value.format``.

One encoder per format in :data:`ENCODERS`; an encoder raises :class:`Rejected` with a short
reason, which :func:`encode_value` turns into a :class:`~mqtt_kafka_sync.errors.DecodeError`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import orjson

from mqtt_kafka_sync.config.model import ValueFormat
from mqtt_kafka_sync.errors import DecodeError


class Rejected(ValueError):
    """A payload an encoder cannot accept; the message is the short reason."""


def _bytes(payload: bytes) -> bytes:
    return payload


def _finite(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise Rejected(f"not valid JSON: number {text} is out of range")
    return number


def _no_constant(name: str) -> object:
    raise Rejected(f"not valid JSON: {name} is not a JSON value")


_BEYOND_64_BITS = 1.8e19  # orjson parses an integer literal beyond the 64-bit range as a float


def _fits_64_bits(value: object) -> bool:
    """False when a float is large enough to be an integer literal that orjson rounded."""
    kind = type(value)
    if kind is float:
        return -_BEYOND_64_BITS < value < _BEYOND_64_BITS  # type: ignore[operator]
    if kind is dict:
        return all(map(_fits_64_bits, value.values()))  # type: ignore[attr-defined]
    if kind is list:
        return all(map(_fits_64_bits, value))  # type: ignore[call-overload]
    return True


def _json(payload: bytes) -> bytes:
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
    try:
        value = json.loads(payload.decode("utf-8"), parse_float=_finite, parse_constant=_no_constant)
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
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate escape such as "\ud800": keep it escaped
        return json.dumps(value, separators=(",", ":")).encode("ascii")


ENCODERS: dict[ValueFormat, Callable[[bytes], bytes]] = {"bytes": _bytes, "json": _json}


def encode_value(value_format: ValueFormat, payload: bytes, mqtt_topic: str) -> bytes:
    """The Kafka record value for ``payload``; raises DecodeError when the format rejects it."""
    try:
        return ENCODERS[value_format](payload)
    except Rejected as exc:
        raise DecodeError(str(exc), mqtt_topic=mqtt_topic) from None
