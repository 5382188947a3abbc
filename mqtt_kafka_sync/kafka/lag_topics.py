"""Which topics a lag read looks at: picklable filters, since the lag reader process receives them.

- :class:`TopicTemplates`: the topics routes could write (``site-{site}`` matches ``site-.+``), what
  a throttle watches: throttling cannot shrink lag on topics it does not write.
- :class:`SubscribedTopics`: the topics a relay subscription reads (names, or ``^`` patterns matched
  as librdkafka matches them).
- :class:`AnyTopic`: any of several filters, for a group that several connectors watch.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable

TopicFilter = Callable[[str], bool]


class TopicTemplates:
    """Whether a Kafka topic is one of ``templates`` could render (``site-{site}`` -> ``site-.+``).

    A template without placeholders is a plain topic name.
    """

    def __init__(self, templates: Iterable[str]) -> None:
        self.templates = tuple(templates)
        parts = []
        for text in self.templates:
            pieces = []
            for literal, name, _spec, _conv in string.Formatter().parse(text):
                pieces.append(re.escape(literal))
                if name is not None:
                    pieces.append(".+")
            parts.append("".join(pieces))
        self._regex = re.compile("|".join(f"(?:{p})" for p in parts)) if parts else None

    def __call__(self, topic: str) -> bool:
        return self._regex is not None and self._regex.fullmatch(topic) is not None


class SubscribedTopics:
    """Topics a subscription to ``topics`` reads: names, or ``^`` patterns (searched, as librdkafka)."""

    def __init__(self, topics: Iterable[str]) -> None:
        listed = tuple(topics)
        self._names = frozenset(t for t in listed if not t.startswith("^"))
        self._patterns = tuple(re.compile(t) for t in listed if t.startswith("^"))

    def __call__(self, topic: str) -> bool:
        return topic in self._names or any(p.search(topic) for p in self._patterns)


class AnyTopic:
    """Topics any of ``filters`` accepts."""

    def __init__(self, filters: Iterable[TopicFilter]) -> None:
        self.filters = tuple(filters)

    def __call__(self, topic: str) -> bool:
        return any(f(topic) for f in self.filters)
