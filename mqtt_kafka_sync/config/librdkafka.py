"""Check ``kafka.producer.*`` / ``kafka.consumer.*`` values with librdkafka itself, at load time.

librdkafka knows its own properties, aliases and value types better than any list we could keep:
building a client from the settings (no ``bootstrap.servers``, so it never connects) accepts them or
says what is wrong. Without this an unknown property or ``linger.ms=soon`` passed ``validate`` and
the task then crash-looped with raw tracebacks.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Literal

from confluent_kafka import Consumer, KafkaException, Producer

_quiet = logging.getLogger(__name__)
_quiet.addHandler(logging.NullHandler())
_quiet.propagate = False

Client = Literal["producer", "consumer"]


def _refusal(client: Client, settings: Mapping[str, str]) -> str | None:
    """librdkafka's words when it will not build a ``client`` from ``settings``; None when it will."""
    config: dict[str, str | object] = {**settings, "logger": _quiet}
    try:
        if client == "producer":
            Producer(config)
        else:
            Consumer({"group.id": "validate", **config})
    except KafkaException as exc:
        err = exc.args[0] if exc.args else exc
        return err.str() if hasattr(err, "str") else str(err)
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
