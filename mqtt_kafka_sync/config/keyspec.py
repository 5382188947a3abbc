"""One config key's declaration, and how a value written in a file becomes a typed value.

Values arrive as text (JSON numbers and booleans are turned into text first), are stripped (except
secrets), parsed by type, checked against choices, range and pattern, then by the key's own check.
A key's default is written as text too and goes through the same parsing.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from mqtt_kafka_sync.config.model import Secret

ValueType = Literal["str", "int", "float", "bool", "enum", "list", "secret"]

_INT = re.compile(r"[+-]?[0-9]+")
_FLOAT = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


class BadValue(ValueError):
    """A value the spec rejects: what is wrong (never the value of a secret) and what would be right."""

    def __init__(self, problem: str, fix: str = "") -> None:
        self.problem = problem
        self.fix = fix
        super().__init__(problem)


@dataclass(frozen=True)
class KeySpec:
    key: str
    type: ValueType
    description: str
    example: str
    required: bool = False
    default: str | None = None
    """As it would be written in a file; parsed like user input."""
    default_doc: str = ""
    """For a default computed from other keys: how."""
    choices: tuple[str, ...] = ()
    minimum: float | None = None
    maximum: float | None = None
    pattern: str = ""
    """Regex every value (every item, for lists) must fully match."""
    pattern_doc: str = ""
    check: Callable[[Any], object] | None = None
    """Checks (and may convert) the typed value; raises :class:`BadValue`."""

    def parse(self, text: str) -> object:
        """The typed value for ``text``; raises :class:`BadValue`."""
        if self.type == "secret":
            return Secret(text)
        text = text.strip()
        value: object
        if self.type == "list":
            value = tuple(item.strip() for item in text.split(",") if item.strip())
            if not value:
                raise BadValue("the list is empty", f"write a comma-separated list, e.g. {self.example}")
            for item in value:
                self._match_pattern(item)
        elif self.type in ("int", "float"):
            value = self._number(text)
        elif self.type == "bool":
            if text.lower() not in ("true", "false"):
                raise BadValue(f"{text!r} is not true or false", "use true or false")
            value = text.lower() == "true"
        elif self.type == "enum":
            if text not in self.choices:
                raise BadValue(f"{text!r} is not allowed", f"use {self.choices_doc()}")
            value = text
        else:
            self._match_pattern(text)
            value = text
        return self.check(value) if self.check is not None else value

    def range_doc(self) -> str:
        low, high = self.minimum, self.maximum
        if low is not None and high is not None:
            return f"from {_plain(low)} to {_plain(high)}"
        if low is not None:
            return f"at least {_plain(low)}"
        return f"at most {_plain(high)}" if high is not None else ""

    def choices_doc(self) -> str:
        return " or ".join(self.choices) if len(self.choices) < 3 else "one of " + ", ".join(self.choices)

    def _number(self, text: str) -> int | float:
        whole = self.type == "int"
        if not (_INT if whole else _FLOAT).fullmatch(text):
            kind = "a whole number" if whole else "a number"
            raise BadValue(f"{text!r} is not {kind}", f"use {kind}, e.g. {self.example}")
        number = int(text) if whole else float(text)
        if (self.minimum is not None and number < self.minimum) or (
            self.maximum is not None and number > self.maximum
        ):
            raise BadValue(f"{text} is out of range", f"use a value {self.range_doc()}")
        return number

    def _match_pattern(self, text: str) -> None:
        if self.pattern and not re.fullmatch(self.pattern, text):
            raise BadValue(
                f"{text!r} may only contain {self.pattern_doc}", f"use e.g. {self.example.split(',')[0]}"
            )


def _plain(number: float) -> str:
    return str(int(number)) if float(number).is_integer() else str(number)
