"""Check ``kafka.producer.*`` / ``kafka.consumer.*`` values with librdkafka itself, at load time.

librdkafka knows its own properties, aliases and value types better than any list we could keep:
building a client from the settings (no ``bootstrap.servers``, so it never connects) accepts them or
says what is wrong. Without this an unknown property or ``linger.ms=soon`` passed ``validate`` and
the task then crash-looped with raw tracebacks.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Mapping
from typing import Literal

from confluent_kafka import Consumer, KafkaException, Producer

from mqtt_kafka_sync.secret import Secret

_quiet = logging.getLogger(__name__)
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False

Client = Literal["producer", "consumer"]


def revealed(settings: Mapping[str, str]) -> dict[str, str]:
    """``settings`` with :class:`Secret` values as their text: confluent-kafka reads a value with
    ``str()``, which a Secret masks."""
    return {k: v.reveal() if isinstance(v, Secret) else v for k, v in settings.items()}


def _masked(text: str, settings: Mapping[str, str]) -> str:
    """librdkafka may quote a value in its refusal: never a secret's."""
    for value in settings.values():
        if isinstance(value, Secret) and value.reveal():
            text = text.replace(value.reveal(), str(value))
    return text


@functools.cache
def knows(prop: str) -> bool:
    """Whether ``prop`` is a librdkafka property (of any client)."""
    why = _refusal("producer", {prop: ""})
    return not (why or "").startswith("No such configuration property")


def _refusal(client: Client, settings: Mapping[str, str]) -> str | None:
    """librdkafka's words when it will not build a ``client`` from ``settings``; None when it will."""
    config: dict[str, str | object] = {**revealed(settings), "logger": _quiet}
    try:
        if client == "producer":
            Producer(config)
        else:
            Consumer({"group.id": "validate", **config})
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        return _masked(err.str() if hasattr(err, "str") else str(err), settings)
    return None


def librdkafka_problems(
    client: Client, overrides: Mapping[str, str], fixed: Mapping[str, str]
) -> dict[str, str]:
    """Property -> what librdkafka says is wrong with it, for the ``overrides`` it refuses.

    ``fixed`` are the settings the product always sets (the delivery guarantee), checked together
    with the overrides. When the refusal comes only from the combination, it is reported under
    ``"*"``.
    """
    if not overrides:
        return {}
    combined = _refusal(client, {**overrides, **fixed})
    if combined is None:
        return {}
    found = {prop: why for prop, value in overrides.items() if (why := _refusal(client, {prop: value}))}
    return found or {"*": combined}
