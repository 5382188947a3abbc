"""What every connector builder shares: collecting problems, unknown keys, client pass-through keys."""

from __future__ import annotations

import difflib
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from mqtt_kafka_sync.config.common_keys import KAFKA_PREFIX, is_secret_property
from mqtt_kafka_sync.config.keyspec import BadValue, KeySpec
from mqtt_kafka_sync.config.librdkafka import Client, knows, librdkafka_problems
from mqtt_kafka_sync.config.tls_files import tls_file_problems
from mqtt_kafka_sync.errors import ConfigProblem
from mqtt_kafka_sync.secret import Secret

DOCS = "see docs/config-reference.md for every key"


class Problems(list[ConfigProblem]):
    """The problems found in one file, and the key lookup that records them."""

    def __init__(self, source: str) -> None:
        super().__init__()
        self.source = source

    def add(self, key: str, problem: str, fix: str = "") -> None:
        self.append(ConfigProblem(self.source, key, problem, fix))

    def value(self, key_spec: KeySpec, raw: Mapping[str, str], key: str = "") -> Any:
        """The typed value of ``key`` (default: the spec's key), its default, or None after a problem."""
        key = key or key_spec.key
        text = raw.get(key)
        if text is None or not text.strip():
            if key_spec.default is None:
                if key_spec.required:
                    state = "is required" if text is None else "is required but empty"
                    self.add(key, state, f"set it, e.g. {key}={key_spec.example}")
                return None
            text = key_spec.default
        try:
            return key_spec.parse(text)
        except BadValue as exc:
            self.add(key, exc.problem, exc.fix)
            return None


def nearest(word: str, candidates: Collection[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest candidate, or nothing."""
    near = difflib.get_close_matches(word, list(candidates), n=1)
    return f" (did you mean {near[0]!r}?)" if near else ""


def client_overrides(
    raw: Mapping[str, str],
    prefix: str,
    forbidden: Mapping[str, str],
    problems: Problems,
    *,
    example: str,
    refuse: Callable[[str, str], tuple[str, str] | None] = lambda prop, text: None,
    fixed: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """``<prefix><librdkafka property>`` pass-through keys, minus the ones that would break a guarantee.

    ``forbidden`` maps a property to why it cannot be set; ``refuse(prop, value)`` may return
    (problem, fix) for values that are not allowed. The TLS files named must exist and parse
    (:mod:`~mqtt_kafka_sync.config.tls_files`). What is left is checked by librdkafka itself
    (:mod:`~mqtt_kafka_sync.config.librdkafka`), together with the ``fixed`` settings the product
    always sets for that client. Secret properties come back as :class:`Secret`.
    """
    overrides: dict[str, str] = {}
    for key, text in raw.items():
        if not key.startswith(prefix) or not text.strip():
            continue
        prop = key.removeprefix(prefix)
        value = text.strip()
        if prop in forbidden:
            problems.add(key, f"{prop} cannot be set: {forbidden[prop]}", f"remove {key}")
        elif not prop:
            problems.add(key, f"names no {prefix.rstrip('.').rsplit('.', 1)[-1]} property", f"e.g. {example}")
        elif (refused := refuse(prop, value)) is not None:
            problems.add(key, *refused)
        else:
            overrides[prop] = Secret(value) if is_secret_property(prop) else value
    for prop, problem, fix in tls_file_problems(overrides):
        problems.add(prefix + prop, problem, fix)
        overrides.pop(prop, None)
    client: Client = "consumer" if prefix.endswith("consumer.") else "producer"
    for prop, why in librdkafka_problems(client, overrides, fixed or {}).items():
        key = prefix + prop
        if prop == "*":
            props = ", ".join(prefix + p for p in overrides)
            problems.add(
                prefix + "*", f"librdkafka refuses these {client} settings together: {why}", f"check {props}"
            )
        else:
            problems.add(
                key,
                f"librdkafka refuses {prop}={str(overrides.pop(prop))!r}: {why}",
                f"fix or remove {key}; {DOCS}",
            )
    return overrides


def route_of(key: str, route_keys: Collection[str], route_key_prefixes: tuple[str, ...] = ()) -> str | None:
    """The route name in a ``routes.<route>.<route key>`` key, or None for any other key."""
    parts = key.split(".", 2)
    if len(parts) != 3 or parts[0] != "routes":
        return None
    return parts[1] if parts[2] in route_keys or parts[2].startswith(route_key_prefixes) else None


def check_keys(
    raw: Mapping[str, str],
    *,
    keys: Iterable[KeySpec],
    route_keys: Iterable[str],
    listed: tuple[str, ...] | None,
    routes: Callable[[str], str | None],
    client_prefixes: tuple[str, ...],
    problems: Problems,
    allowed: Callable[[str], bool] = lambda key: False,
) -> None:
    """Unknown keys (with the closest known key) and route keys of routes not listed in ``routes``.

    ``keys`` are the connector keys, ``route_keys`` the suffixes of ``routes.<route>.*`` each listed
    route takes; ``routes(key)`` names the route a route key belongs to; ``allowed(key)`` accepts keys
    of an open-ended family.
    """
    suffixes = tuple(route_keys)
    known = [s.key for s in keys] + [f"routes.{n}.{sfx}" for n in listed or () for sfx in suffixes]
    for key in raw:
        if key in known or key.startswith(client_prefixes) or allowed(key) or _passes_through(key):
            continue
        if (route := routes(key)) is not None:
            if listed is not None:
                fix = f"add it to routes, or remove {key}"
                problems.add(key, f"route {route!r} is not listed in routes{nearest(route, listed)}", fix)
            continue
        candidates = [*known, *_misspelt_prefix(key, client_prefixes)]
        problems.add(key, f"unknown key {key!r}{nearest(key, candidates)}", DOCS)


def _passes_through(key: str) -> bool:
    """``kafka.<librdkafka property>``: every Kafka client's setting, checked where it is read."""
    prop = key.removeprefix(KAFKA_PREFIX)
    return prop != key and knows(prop)


def _misspelt_prefix(key: str, prefixes: tuple[str, ...]) -> list[str]:
    """``kafka.produser.x`` -> ``kafka.producer.x``, so a misspelt prefix gets a useful suggestion."""
    parts = key.split(".", 2)
    if len(parts) < 3:
        return []
    near = difflib.get_close_matches(f"{parts[0]}.{parts[1]}.", list(prefixes), n=1)
    return [near[0] + parts[2]] if near else []
