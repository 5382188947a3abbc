"""Java ``.properties`` parsing, as ``java.util.Properties.load`` reads it (but from UTF-8 text).

``key=value``, ``key: value`` or ``key value``; ``#`` and ``!`` start comment lines; a line ending
in an odd number of backslashes continues on the next (whose leading blanks are dropped);
``\\t \\n \\r \\f \\uXXXX`` escapes, and a backslash before any other character keeps that character.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_NEWLINE = re.compile(r"\r\n|\r|\n")
_ESCAPE = re.compile(r"\\(u[0-9a-fA-F]{4}|u|.)", re.DOTALL)
_NAMED = {"t": "\t", "n": "\n", "r": "\r", "f": "\f"}
_BLANK = " \t\f"


class PropertiesError(ValueError):
    def __init__(self, line: int, message: str) -> None:
        self.line = line
        super().__init__(f"line {line}: {message}")


class Entry(NamedTuple):
    key: str
    value: str
    line: int


def parse_properties(text: str) -> list[Entry]:
    """Every ``key=value`` entry in file order (duplicates kept, so callers can report them)."""
    lines = _NEWLINE.split(text)
    entries: list[Entry] = []
    index = 0
    while index < len(lines):
        start = index + 1
        logical = lines[index].lstrip(_BLANK)
        index += 1
        if not logical or logical[0] in "#!":
            continue
        while _continues(logical):
            logical = logical[:-1]
            if index < len(lines):
                logical += lines[index].lstrip(_BLANK)
                index += 1
        key, value = _split(logical)
        entries.append(Entry(_unescape(key, start), _unescape(value, start), start))
    return entries


def _continues(line: str) -> bool:
    return (len(line) - len(line.rstrip("\\"))) % 2 == 1


def _split(line: str) -> tuple[str, str]:
    end = 0
    while end < len(line) and line[end] not in "=:" + _BLANK:
        end += 2 if line[end] == "\\" else 1
    end = min(end, len(line))
    rest = line[end:].lstrip(_BLANK)
    if rest[:1] in ("=", ":"):
        rest = rest[1:].lstrip(_BLANK)
    return line[:end], rest


def _unescape(text: str, line: int) -> str:
    def one(match: re.Match[str]) -> str:
        code = match.group(1)
        if code == "u":
            raise PropertiesError(line, "malformed \\uXXXX escape")
        if len(code) == 5:
            return chr(int(code[1:], 16))
        return _NAMED.get(code, code)

    return _ESCAPE.sub(one, text) if "\\" in text else text
