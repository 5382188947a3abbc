"""Check a JSON value against an Avro schema, and turn it into what fastavro writes.

fastavro alone is too lenient for data we must not corrupt: it writes ``true`` into a ``long`` field
as 1 and ``1.5`` as 1, and ignores fields the schema does not have. :func:`compile_converter` builds,
once per schema, a function that walks a parsed JSON payload and raises
:class:`~mqtt_kafka_sync.codec.exceptions.Rejected` naming the field and the problem.

How JSON maps to Avro (plain JSON, not Avro's own JSON encoding):

- ``int``/``long`` take JSON integers in range; ``float``/``double`` take any JSON number;
  ``boolean`` only ``true``/``false``; ``string`` and ``enum`` take strings (an enum one of its symbols).
- ``bytes`` and ``fixed`` take a string of characters U+0000..U+00FF, one per byte, as Avro's JSON
  encoding writes them; ``decimal`` takes a number or a numeric string, with at most ``scale``
  decimal places; ``uuid`` a UUID string; dates and times their underlying int or long.
- A union takes the value itself (no ``{"type": value}`` wrapper); the first branch that fits wins.
- A record takes an object: a missing field takes its default (and is an error without one); a
  field the schema does not have is an error, unless unknown fields are ignored.

Why over 350 lines: it holds one table, the compiler and one small converter per Avro type
(each a few lines, most of them alike in shape but not in what they accept). Split, the mapping
above would be read across files; no other module uses the converters.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

from mqtt_kafka_sync.codec.exceptions import Rejected

Converter = Callable[[Any], Any]
UnknownFields = Literal["reject", "ignore"]

_INT32 = (-(2**31), 2**31 - 1)
_INT64 = (-(2**63), 2**63 - 1)
_FLOAT_MAX = 3.4028234663852886e38
_DOUBLE_MAX = sys.float_info.max
_UUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
"""The form Java's ``UUID.fromString`` and Avro's uuid conversion read."""


def compile_converter(schema: Any, unknown_fields: UnknownFields = "reject") -> Converter:
    """The converter for a schema parsed by fastavro (names already expanded to full names)."""
    return _Compiler(unknown_fields == "reject").compile(schema)


def describe(value: object) -> str:
    """A JSON value as an error message shows it: its JSON type and, if short, the value."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int | float):
        text = repr(value)
        return f"number {text}" if len(text) <= 24 else f"a number of {len(text)} digits"
    if isinstance(value, str):
        return f"string {_short(value)}"
    return "an array" if isinstance(value, list) else "an object"


def _short(text: str) -> str:
    """Quoted, at most 40 characters, ASCII only (it ends up in a Kafka header)."""
    return json.dumps(text if len(text) <= 40 else f"{text[:37]}...")


class _Compiler:
    def __init__(self, reject_unknown: bool) -> None:
        self.reject_unknown = reject_unknown
        self.named: dict[str, Converter] = {}
        self.kinds: dict[str, str] = {}
        """Named type -> its kind (record, enum, fixed), for unions that refer to it by name."""

    def compile(self, schema: Any) -> Converter:
        if isinstance(schema, list):
            return self._union(schema)
        if isinstance(schema, str):
            return self.named.get(schema) or _PRIMITIVES[schema]
        kind = schema["type"]
        logical = schema.get("logicalType")
        if logical == "decimal" and kind in ("bytes", "fixed"):
            return _decimal(int(schema.get("precision", 0)), int(schema.get("scale", 0)))
        if logical == "uuid" and kind == "string":
            return _uuid
        build: dict[str, Callable[[dict[str, Any]], Converter]] = {
            "record": self._record,
            "error": self._record,
            "enum": lambda s: _enum(s["name"], s["symbols"]),
            "fixed": lambda s: _fixed(s["name"], int(s["size"])),
            "array": lambda s: _array(self.compile(s["items"])),
            "map": lambda s: _map(self.compile(s["values"])),
        }
        if kind in build:
            if "name" in schema:
                self.kinds[schema["name"]] = kind
            return build[kind](schema)
        return self.compile(kind)  # a primitive with a logical type: {"type": "long", "logicalType": ...}

    def _reference(self, name: str) -> Converter:
        """Named type ``name`` as used inside its own definition (a recursive record)."""

        def convert(value: Any) -> Any:
            return self.named[name](value)

        return convert

    def _record(self, schema: dict[str, Any]) -> Converter:
        name = schema["name"]
        self.named[name] = self._reference(name)
        fields = tuple((f["name"], self.compile(f["type"]), "default" not in f) for f in schema["fields"])
        known = frozenset(f[0] for f in fields)
        reject_unknown = self.reject_unknown

        def convert(value: Any) -> Any:
            if type(value) is not dict:
                raise Rejected(f"expected an object (record {name}), got {describe(value)}")
            present = 0
            for field, field_converter, required in fields:
                if field in value:
                    present += 1
                    try:
                        value[field] = field_converter(value[field])
                    except Rejected as exc:
                        raise exc.within(field) from None
                elif required:
                    raise Rejected("is missing, and the schema gives it no default", field)
            if reject_unknown and present != len(value):
                extra = next(k for k in value if k not in known)
                raise Rejected(f"is not a field of record {name}", extra)
            return value

        self.named[name] = convert
        return convert

    def _union(self, branches: list[Any]) -> Converter:
        converters = [self.compile(b) for b in branches]
        label = "one of " + ", ".join(_branch_label(b) for b in branches)
        if len(branches) == 2 and branches[0] == "null":
            inner = converters[1]

            def nullable(value: Any) -> Any:
                return None if value is None else inner(value)

            return nullable
        # Per JSON type, the branches that may take it, in union order: usually one, so no branch
        # is tried and failed on the way.
        by_type: dict[type, list[tuple[Converter, bool]]] = {}
        for branch, converter in zip(branches, converters, strict=True):
            for json_type in _json_types(branch, self.kinds):
                by_type.setdefault(json_type, []).append((converter, _is_structured(branch, self.kinds)))

        def convert(value: Any) -> Any:
            best: Rejected | None = None
            for converter, is_structured in by_type.get(type(value), ()):
                try:
                    return converter(value)
                except Rejected as exc:
                    if best is None and is_structured:
                        best = exc
            raise best or Rejected(f"expected {label}, got {describe(value)}")

        return convert


_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "null": (type(None),),
    "boolean": (bool,),
    "int": (int,),
    "long": (int,),
    "float": (int, float),
    "double": (int, float),
    "string": (str,),
    "bytes": (str,),
    "fixed": (str,),
    "enum": (str,),
    "array": (list,),
    "map": (dict,),
    "record": (dict,),
    "error": (dict,),
}


def _json_types(schema: Any, kinds: dict[str, str]) -> tuple[type, ...]:
    """The JSON value types (as parsed) a branch may take."""
    if isinstance(schema, dict):
        if schema.get("logicalType") == "decimal":
            return (int, float, str)
        kind = str(schema["type"])
        return _JSON_TYPES.get(kind) or _json_types(kind, kinds)
    return _JSON_TYPES.get(kinds.get(schema, schema), ())


def _branch_label(schema: Any) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("logicalType") or schema.get("type"))
    return str(schema)


def _is_structured(schema: Any, kinds: dict[str, str]) -> bool:
    kind = schema.get("type") if isinstance(schema, dict) else kinds.get(schema)
    return kind in ("record", "error", "map")


def _null(value: Any) -> Any:
    if value is None:
        return None
    raise Rejected(f"expected null, got {describe(value)}")


def _boolean(value: Any) -> Any:
    if value is True or value is False:
        return value
    raise Rejected(f"expected boolean, got {describe(value)}")


def _int(value: Any) -> Any:
    if type(value) is int and _INT32[0] <= value <= _INT32[1]:
        return value
    raise Rejected(_not_integer("int", value))


def _long(value: Any) -> Any:
    if type(value) is int and _INT64[0] <= value <= _INT64[1]:
        return value
    raise Rejected(_not_integer("long", value))


def _not_integer(kind: str, value: Any) -> str:
    if type(value) is int:
        return f"{describe(value)} is out of range for {kind}"
    return f"expected {kind} (an integer), got {describe(value)}"


def _float(value: Any) -> Any:
    if (type(value) is float or type(value) is int) and -_FLOAT_MAX <= value <= _FLOAT_MAX:
        return value
    raise Rejected(_not_number("float", value))


def _double(value: Any) -> Any:
    if (type(value) is float or type(value) is int) and -_DOUBLE_MAX <= value <= _DOUBLE_MAX:
        return value
    raise Rejected(_not_number("double", value))


def _not_number(kind: str, value: Any) -> str:
    if type(value) in (int, float):
        return f"{describe(value)} is out of range for {kind}"
    return f"expected {kind} (a number), got {describe(value)}"


def _string(value: Any) -> Any:
    if type(value) is str:
        return value
    raise Rejected(f"expected string, got {describe(value)}")


def _bytes(value: Any) -> Any:
    if type(value) is str:
        try:
            return value.encode("latin-1")
        except UnicodeEncodeError:
            pass
    raise Rejected(f"expected bytes (a string of characters U+0000..U+00FF), got {describe(value)}")


def _uuid(value: Any) -> Any:
    if type(value) is str and _UUID.fullmatch(value):
        return value
    raise Rejected(f"expected a UUID string (8-4-4-4-12 hex digits), got {describe(value)}")


_PRIMITIVES: dict[str, Converter] = {
    "null": _null,
    "boolean": _boolean,
    "int": _int,
    "long": _long,
    "float": _float,
    "double": _double,
    "string": _string,
    "bytes": _bytes,
}


def _enum(name: str, symbols: list[str]) -> Converter:
    allowed = frozenset(symbols)
    listed = ", ".join(symbols)

    def convert(value: Any) -> Any:
        if type(value) is str and value in allowed:
            return value
        raise Rejected(f"expected one of {listed} (enum {name}), got {describe(value)}")

    return convert


def _fixed(name: str, size: int) -> Converter:
    def convert(value: Any) -> Any:
        data = _bytes(value)
        if len(data) == size:
            return data
        raise Rejected(f"expected {size} bytes (fixed {name}), got {len(data)}")

    return convert


def _decimal(precision: int, scale: int) -> Converter:
    step = Decimal(1).scaleb(-scale)

    def convert(value: Any) -> Any:
        if type(value) in (int, float, str):
            try:
                number = Decimal(str(value) if type(value) is float else value)
            except InvalidOperation:
                number = Decimal("NaN")
            if number.is_finite():
                exponent = number.as_tuple().exponent
                if isinstance(exponent, int) and -exponent > scale:
                    raise Rejected(f"{describe(value)} has more than {scale} decimal places")
                scaled = number.quantize(step)
                if precision and len(scaled.as_tuple().digits) > precision:
                    raise Rejected(f"{describe(value)} has more than {precision} digits")
                return scaled
        raise Rejected(f"expected a decimal number, got {describe(value)}")

    return convert


def _array(item: Converter) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is not list:
            raise Rejected(f"expected an array, got {describe(value)}")
        out = []
        for index, element in enumerate(value):
            try:
                out.append(item(element))
            except Rejected as exc:
                raise exc.within(index) from None
        return out

    return convert


def _map(values: Converter) -> Converter:
    def convert(value: Any) -> Any:
        if type(value) is not dict:
            raise Rejected(f"expected an object (map), got {describe(value)}")
        for key, element in value.items():
            try:
                value[key] = values(element)
            except Rejected as exc:
                raise exc.within(key) from None
        return value

    return convert
