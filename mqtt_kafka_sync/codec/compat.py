"""Can a reader schema read what a writer schema wrote? The Avro specification's schema resolution
rules, as a list of problems (each with the field it is about) instead of a yes or no.

``backward_problems(new, old)`` empty means ``new`` is backward compatible with ``old``: consumers
that upgrade to ``new`` still read every record written with ``old``. Named types match by full name
or by one of the reader's aliases; numeric promotions (int -> long -> float -> double) and
string <-> bytes are allowed, as the specification says.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

Schema = Any
_PROMOTIONS = {
    ("int", "long"),
    ("int", "float"),
    ("int", "double"),
    ("long", "float"),
    ("long", "double"),
    ("float", "double"),
    ("string", "bytes"),
    ("bytes", "string"),
}
_PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


def backward_problems(reader: Schema, writer: Schema) -> list[tuple[str, str]]:
    """``(field path, problem)`` for everything ``reader`` cannot read of what ``writer`` wrote."""
    check = _Check(named_types(reader), named_types(writer))
    return list(check.resolve(reader, writer, ""))


class _Check:
    def __init__(self, reader_names: dict[str, Schema], writer_names: dict[str, Schema]) -> None:
        self.reader_names = reader_names
        self.writer_names = writer_names
        self.visiting: set[tuple[str, str]] = set()

    def resolve(self, reader: Schema, writer: Schema, path: str) -> Iterator[tuple[str, str]]:
        reader = self._deref(reader, self.reader_names)
        writer = self._deref(writer, self.writer_names)
        if isinstance(writer, list):
            for branch in writer:
                yield from self.resolve(reader, branch, path)
            return
        if isinstance(reader, list):
            picked = self._pick(reader, writer)
            if picked is None:
                yield (
                    path or "(top)",
                    f"{_label(writer)} is not one of the union's branches {_labels(reader)}",
                )
            else:
                yield from self.resolve(picked, writer, path)
            return
        reader_kind, writer_kind = _kind(reader), _kind(writer)
        if reader_kind != writer_kind:
            if (writer_kind, reader_kind) not in _PROMOTIONS:
                yield path or "(top)", f"type changed from {_label(writer)} to {_label(reader)}"
        elif reader_kind in ("record", "error", "enum", "fixed") and not _same_name(reader, writer):
            yield path or "(top)", f"name changed from {writer['name']} to {reader['name']}"
        elif reader_kind not in _PRIMITIVES:
            yield from self._complex(reader, writer, path)

    def _complex(self, reader: Schema, writer: Schema, path: str) -> Iterator[tuple[str, str]]:
        """Records, enums, fixed, arrays and maps of the same kind (and name)."""
        reader_kind = _kind(reader)
        if reader_kind in ("record", "error"):
            yield from self._record(reader, writer, path)
        elif reader_kind == "enum":
            missing = [s for s in writer["symbols"] if s not in reader["symbols"]]
            if missing and "default" not in reader:
                listed = ", ".join(missing)
                yield path or "(top)", f"enum symbols {listed} were removed and the enum has no default"
        elif reader_kind == "fixed" and reader["size"] != writer["size"]:
            yield path or "(top)", f"fixed size changed from {writer['size']} to {reader['size']}"
        elif reader_kind == "array":
            yield from self.resolve(reader["items"], writer["items"], f"{path}[]")
        elif reader_kind == "map":
            yield from self.resolve(reader["values"], writer["values"], f"{path}{{}}")

    def _record(self, reader: Schema, writer: Schema, path: str) -> Iterator[tuple[str, str]]:
        pair = (reader["name"], writer["name"])
        if pair in self.visiting:  # a recursive type: already being checked further up
            return
        self.visiting.add(pair)
        written = {f["name"]: f for f in writer["fields"]}
        for field in reader["fields"]:
            where = f"{path}.{field['name']}" if path else field["name"]
            names = [field["name"], *field.get("aliases", [])]
            source = next((written[n] for n in names if n in written), None)
            if source is not None:
                yield from self.resolve(field["type"], source["type"], where)
            elif "default" not in field:
                yield where, "was added without a default, so records that lack it cannot be read"
        self.visiting.discard(pair)

    def _pick(self, branches: list[Schema], writer: Schema) -> Schema | None:
        """The first reader branch that can read ``writer``: same kind (and name), then a promotion."""
        writer = self._deref(writer, self.writer_names)
        candidates = [self._deref(b, self.reader_names) for b in branches]
        for branch in candidates:
            if _kind(branch) == _kind(writer) and (
                _kind(writer) not in ("record", "error", "enum", "fixed") or _same_name(branch, writer)
            ):
                return branch
        for branch in candidates:
            if (_kind(writer), _kind(branch)) in _PROMOTIONS:
                return branch
        return None

    @staticmethod
    def _deref(schema: Schema, names: dict[str, Schema]) -> Schema:
        return names.get(schema, schema) if isinstance(schema, str) else schema


def named_types(schema: Schema, found: dict[str, Schema] | None = None) -> dict[str, Schema]:
    """Named types by full name (parsed schemas spell each out once, then refer to it by name)."""
    found = {} if found is None else found
    if isinstance(schema, list):
        for branch in schema:
            named_types(branch, found)
    elif isinstance(schema, dict):
        if schema.get("type") in ("record", "error", "enum", "fixed"):
            found[schema["name"]] = schema
        for field in schema.get("fields", []):
            named_types(field["type"], found)
        for key in ("items", "values"):
            if key in schema:
                named_types(schema[key], found)
    return found


def _kind(schema: Schema) -> str:
    return str(schema.get("type")) if isinstance(schema, dict) else str(schema)


def _same_name(reader: Schema, writer: Schema) -> bool:
    if reader["name"] == writer["name"]:
        return True
    namespace = reader["name"].rpartition(".")[0]
    aliases = {a if "." in a or not namespace else f"{namespace}.{a}" for a in reader.get("aliases", [])}
    return writer["name"] in aliases


def _labels(branches: list[Schema]) -> str:
    return "[" + ", ".join(_label(b) for b in branches) + "]"


def _label(schema: Schema) -> str:
    if isinstance(schema, dict):
        return str(schema.get("name") or schema.get("type"))
    return str(schema)
