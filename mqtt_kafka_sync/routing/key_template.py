"""Record-key templates read backwards: ``{plant}.{device}`` turns the key ``p01.d0001`` into
``{"plant": "p01", "device": "d0001"}``.

The command relay parses each record key with its route's ``kafka.key`` template. Literal text must
appear in the key as written; each placeholder takes the shortest text that lets the rest match,
from the left, so ``{plant}.{device}`` reads ``a.b.c`` as plant ``a`` and device ``b.c``. Two
placeholders need literal text between them (``{a}{b}`` could split anywhere). ``{{`` and ``}}``
are literal braces. Values are not checked here: whether one is safe inside an MQTT topic is
:func:`mqtt_kafka_sync.routing.command_topic.unsafe_value`'s business.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

from mqtt_kafka_sync.routing.pattern import NAME

RESERVED = frozenset({"header"})
"""``{header.<name>}`` reads a Kafka header in topic templates, so no key placeholder may be called that."""


class KeyTemplateError(ValueError):
    """A key template that cannot be parsed; the message says why."""


@dataclass(frozen=True, slots=True)
class KeyTemplate:
    text: str
    names: tuple[str, ...]
    """Placeholder names in template order."""
    _regex: re.Pattern[str]

    def parse(self, key: str) -> dict[str, str] | None:
        """The placeholder values, or None when ``key`` does not have the template's shape."""
        found = self._regex.fullmatch(key)
        return None if found is None else found.groupdict()


def compile_key_template(text: str) -> KeyTemplate:
    """Raises :class:`KeyTemplateError` naming the problem."""
    if not text:
        raise KeyTemplateError("the template is empty")
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError as exc:
        raise KeyTemplateError(f"{exc}; write '{{{{' or '}}}}' for a literal brace") from None
    names: list[str] = []
    regex: list[str] = []
    previous_was_name = False
    for literal, name, spec, conversion in parsed:
        if literal:
            regex.append(re.escape(literal))
            previous_was_name = False
        if name is None:
            continue
        if spec or conversion or not NAME.fullmatch(name):
            raise KeyTemplateError(f"{{{name}}} is not a placeholder: use a name like {{device}}")
        if name in RESERVED:
            raise KeyTemplateError(f"{{{name}}} is reserved for {{header.<name>}}; name it differently")
        if name in names:
            raise KeyTemplateError(f"placeholder {{{name}}} appears twice")
        if previous_was_name:
            raise KeyTemplateError(
                f"{{{names[-1]}}}{{{name}}}: two placeholders need literal text between them"
            )
        names.append(name)
        regex.append(f"(?P<{name}>.*?)")
        previous_was_name = True
    return KeyTemplate(text=text, names=tuple(names), _regex=re.compile("".join(regex), re.DOTALL))
