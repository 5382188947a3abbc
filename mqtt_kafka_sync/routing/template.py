"""Kafka topic and key templates such as ``site-{site}`` or ``{plant}.{device}``.

A template may use the placeholders its route pattern defines, ``{topic}`` (the whole MQTT topic)
and, when the pattern ends with ``#``, ``{#}`` (the levels ``#`` matched, joined by ``/``).
``{{`` and ``}}`` stand for literal braces. Templates are checked once, at load, against their
pattern; rendering is then one ``str.format_map`` call.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass

from mqtt_kafka_sync.routing.pattern import NAME, TopicPattern


class TemplateError(ValueError):
    """A template that cannot render for its pattern; the message says why."""


@dataclass(frozen=True, slots=True)
class Template:
    text: str
    names: frozenset[str]
    literals: tuple[str, ...]
    """The text between placeholders, braces unescaped."""

    def render(self, values: Mapping[str, str]) -> str:
        """``values`` holds the pattern's captures plus ``"topic"``."""
        return self.text.format_map(values)


def compile_template(text: str, pattern: TopicPattern) -> Template:
    """Parse ``text`` and check every placeholder is one ``pattern`` provides."""
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise TemplateError(f"{exc}; write '{{{{' or '}}}}' for a literal brace") from None
    available = {"topic", *pattern.names, *(["#"] if pattern.multi_level else [])}
    names: set[str] = set()
    for _literal, name, spec, conversion in parsed:
        if name is None:
            continue
        if spec or conversion or not (name == "#" or NAME.fullmatch(name)):
            raise TemplateError(f"{{{name}}} is not a placeholder: use a name like {{device}}")
        if name == "#" and not pattern.multi_level:
            raise TemplateError(f"{{#}} needs a pattern ending in '#', and {pattern.text!r} does not")
        if name not in available:
            offer = ", ".join(f"{{{n}}}" for n in sorted(available))
            raise TemplateError(f"{{{name}}} is not defined by the pattern {pattern.text!r} (it has {offer})")
        names.add(name)
    return Template(text=text, names=frozenset(names), literals=tuple(lit for lit, *_ in parsed))
