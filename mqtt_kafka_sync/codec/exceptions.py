"""What the codecs raise about one payload; :func:`~mqtt_kafka_sync.codec.values.encode_value` turns it
into a :class:`~mqtt_kafka_sync.errors.DecodeError`, which sends the message to the dead-letter topic."""

from __future__ import annotations


class Rejected(ValueError):
    """A payload an encoder cannot accept: a short reason and, for schema formats, the field at fault.

    ``str()`` is the reason prefixed with the field, e.g. ``field 'seq': expected long, got "7"``.
    """

    def __init__(self, problem: str, field: str | None = None) -> None:
        self.problem = problem
        self.field = field
        super().__init__(f"field {field!r}: {problem}" if field else problem)

    def within(self, name: str | int) -> Rejected:
        """The same rejection, one level up: ``seq`` in record field ``reading`` is ``reading.seq``."""
        step = f"[{name}]" if isinstance(name, int) else str(name)
        if self.field is None:
            return Rejected(self.problem, step)
        joined = f"{step}{self.field}" if self.field.startswith("[") else f"{step}.{self.field}"
        return Rejected(self.problem, joined)
