"""MQTT topic templates of the command relay, e.g. ``plants/{plant}/devices/{device}/commands``.

A template may use its route's key placeholders and ``{header.<name>}``, the value of the record's
Kafka header ``<name>`` (the last one, when a header repeats). ``{{`` and ``}}`` are literal braces.

The literal text fixes the topic's shape: it may not contain ``+``, ``#`` or NUL, nor start with
``$``. A value may fill only the place its placeholder stands in, never add, remove or widen a
level: :func:`unsafe_value` refuses values that are empty or contain ``/``, ``+``, ``#``, NUL or
another control character, so a command can only ever go to a topic its template describes.
"""

from __future__ import annotations

import re
import string
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from mqtt_kafka_sync.routing.pattern import NAME

HEADER_PREFIX = "header."
_HEADER_NAME = re.compile(r"[A-Za-z0-9_.-]+")
_NONCHARACTERS = "".join(
    f"{chr(plane * 0x10000 + 0xFFFE)}{chr(plane * 0x10000 + 0xFFFF)}" for plane in range(17)
)
_UNSAFE = re.compile(f"[/+#\x00-\x1f\x7f-\x9f\ud800-\udfff\ufdd0-\ufdef\ufeff{_NONCHARACTERS}]")
"""What MQTT 5 section 1.5.4 forbids or advises against in a UTF-8 string (control characters,
surrogates, noncharacters), and U+FEFF: paho-based subscribers refuse a topic holding it
([MQTT-1.5.4-3]) and loop on reconnect and redelivery, so that session would be blocked."""
_WHY = {
    "/": "'/' (a level separator)",
    "+": "'+' (a wildcard)",
    "#": "'#' (a wildcard)",
    "\ufeff": "U+FEFF (a byte order mark, which paho-based subscribers refuse)",
}


class CommandTopicError(ValueError):
    """A topic template that could publish outside its shape, or names an unknown placeholder."""


@dataclass(frozen=True, slots=True)
class CommandTopic:
    text: str
    parts: tuple[tuple[str, str | None], ...]
    """(literal, placeholder) pairs; a placeholder is a key name or ``header.<name>``."""
    names: frozenset[str]
    """Key placeholders used."""
    headers: frozenset[str]
    """Header names used (without ``header.``)."""

    def render(self, values: Mapping[str, str]) -> str:
        """``values`` maps key names and ``header.<name>`` to already checked values."""
        return "".join(literal + (values[name] if name is not None else "") for literal, name in self.parts)


def compile_command_topic(text: str, key_names: Collection[str]) -> CommandTopic:
    """Raises :class:`CommandTopicError` naming the problem."""
    if not text:
        raise CommandTopicError("the topic template is empty")
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise CommandTopicError(f"{exc}; write '{{{{' or '}}}}' for a literal brace") from None
    literals = "".join(literal for literal, *_ in parsed)
    for char, why in (("+", "'+' is a wildcard"), ("#", "'#' is a wildcard"), ("\0", "NUL is not allowed")):
        if char in literals:
            raise CommandTopicError(f"{why}: commands are published to exact topics")
    if text.startswith("$"):
        raise CommandTopicError("topics starting with '$' belong to the broker")
    parts: list[tuple[str, str | None]] = []
    names: set[str] = set()
    headers: set[str] = set()
    for literal, name, spec, conversion in parsed:
        if name is None:
            parts.append((literal, None))
            continue
        if spec or conversion:
            raise CommandTopicError(f"{{{name}}} is not a placeholder: use a name like {{device}}")
        if name.startswith(HEADER_PREFIX):
            header = name.removeprefix(HEADER_PREFIX)
            if not _HEADER_NAME.fullmatch(header):
                raise CommandTopicError(
                    f"{{{name}}}: a header name may contain letters, digits, '_', '.' and '-'"
                )
            headers.add(header)
        elif not NAME.fullmatch(name) or name not in key_names:
            offer = ", ".join(f"{{{n}}}" for n in sorted(key_names)) or "none"
            raise CommandTopicError(
                f"{{{name}}} is not a placeholder of the route's kafka.key (it has {offer}); "
                "use {header.<name>} for a Kafka header"
            )
        else:
            names.add(name)
        parts.append((literal, name))
    return CommandTopic(text=text, parts=tuple(parts), names=frozenset(names), headers=frozenset(headers))


def unsafe_value(value: str) -> str | None:
    """Why ``value`` may not fill a placeholder of an MQTT topic, or None when it may."""
    if not value:
        return "is empty"
    found = _UNSAFE.search(value)
    if found is None:
        return None
    char = found.group()
    return "contains " + _WHY.get(char, f"the character U+{ord(char):04X}, not allowed in MQTT topics")
