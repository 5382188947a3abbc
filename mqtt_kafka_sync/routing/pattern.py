"""MQTT topic patterns (``plants/{plant}/#``) and the plain MQTT filters they subscribe with.

A pattern is an MQTT filter whose single-level wildcards may be named: ``{name}`` captures one
level, ``+`` matches one level without capturing, and a final ``#`` matches the rest (and the
parent level itself, as in MQTT). ``match()`` returns the captures, with ``"#"`` holding what a
trailing ``#`` matched.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
BUILT_IN = frozenset({"topic"})
"""Names a template may always use; a pattern cannot define them."""


class PatternError(ValueError):
    """A pattern or filter that is not valid; the message says why."""


@dataclass(frozen=True, slots=True)
class TopicPattern:
    text: str
    filter: str
    """The MQTT subscription filter: placeholders become ``+``."""
    names: tuple[str, ...]
    multi_level: bool
    """True when the pattern ends with ``#`` (so templates may use ``{#}``)."""
    _regex: re.Pattern[str]
    _wild_first: bool

    def match(self, topic: str) -> dict[str, str] | None:
        found = self._regex.fullmatch(topic)
        if found is None or (self._wild_first and topic.startswith("$")):
            return None
        captures = found.groupdict()
        if self.multi_level:
            captures["#"] = found.group(self._regex.groups) or ""
        return captures


def compile_pattern(text: str) -> TopicPattern:
    """Compile a route pattern; raises :class:`PatternError` naming the offending level."""
    if not text:
        raise PatternError("the pattern is empty")
    if text.startswith("$share/"):
        raise PatternError("write the plain filter: '$share/<group>/' is added from mqtt.shared.group")
    if "\0" in text:
        raise PatternError("contains a NUL character")
    levels = text.split("/")
    if "#" in levels[:-1]:
        raise PatternError("'#' must be the last level")
    names: list[str] = []
    parts = [_level_regex(level, names) for level in levels if level != "#"]
    multi = levels[-1] == "#"
    if not multi:
        regex = "/".join(parts)
    elif parts:
        regex = "/".join(parts) + "(?:/(.*))?"
    else:
        regex = "(.*)"
    return TopicPattern(
        text=text,
        filter="/".join("+" if lvl.startswith("{") else lvl for lvl in levels),
        names=tuple(names),
        multi_level=multi,
        _regex=re.compile(regex, re.DOTALL),
        _wild_first=levels[0] in ("+", "#") or levels[0].startswith("{"),
    )


def _level_regex(level: str, names: list[str]) -> str:
    """The regex for one level (not a final ``#``); appends a placeholder's name to ``names``."""
    if level == "+":
        return "[^/]*"
    if level.startswith("{") and level.endswith("}"):
        name = level[1:-1]
        _check_name(name, names)
        names.append(name)
        return f"(?P<{name}>[^/]*)"
    if "+" in level or "#" in level:
        raise PatternError(f"'+' and '#' must be a whole level, found {level!r}")
    if "{" in level or "}" in level:
        raise PatternError(f"a placeholder must be a whole level, like 'devices/{{device}}'; found {level!r}")
    return re.escape(level)


def _check_name(name: str, seen: list[str]) -> None:
    if not NAME.fullmatch(name):
        raise PatternError(f"placeholder name {name!r} must match {NAME.pattern}")
    if name in BUILT_IN:
        raise PatternError(f"{{{name}}} is built in (the whole MQTT topic); name the level differently")
    if name in seen:
        raise PatternError(f"placeholder {{{name}}} appears twice")


def check_filter(text: str) -> None:
    """Raise :class:`PatternError` unless ``text`` is a valid plain MQTT subscription filter."""
    if compile_pattern(text).names:
        raise PatternError("a subscription filter has no placeholders: use '+' (placeholders go in routes)")


def covers(outer: str, inner: str) -> bool:
    """True when every topic matching filter ``inner`` also matches filter ``outer``."""
    out_levels, in_levels = outer.split("/"), inner.split("/")
    for index, level in enumerate(out_levels):
        if level == "#":
            return True
        if index >= len(in_levels) or in_levels[index] == "#":
            return False
        if level not in ("+", in_levels[index]):
            return False
    return len(out_levels) == len(in_levels)


def overlaps(first: str, second: str) -> bool:
    """True when some topic matches both filters."""
    a, b = first.split("/"), second.split("/")
    for index in range(max(len(a), len(b))):
        if index >= len(a) or index >= len(b):
            longer = b if index >= len(a) else a
            return longer[index] == "#"
        if "#" in (a[index], b[index]):
            return True
        if "+" not in (a[index], b[index]) and a[index] != b[index]:
            return False
    return True


def merge_filters(filters: Iterable[str]) -> tuple[str, ...]:
    """Deduplicate in order and drop filters another filter already covers."""
    unique = tuple(dict.fromkeys(filters))
    return tuple(f for f in unique if not any(o != f and covers(o, f) for o in unique))
