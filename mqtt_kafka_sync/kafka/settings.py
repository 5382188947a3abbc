"""The librdkafka settings of one Kafka client, from a :class:`KafkaConnection`: the one place they are
put together, so security (``kafka.security.protocol``, ``kafka.sasl.*``, ``kafka.ssl.*``, or a
command's ``--command-config``) reaches every client a connector or a command opens.

Layers, each over the one before: ``bootstrap.servers``, the client's own defaults, ``kafka.<p>``,
``kafka.producer.<p>`` / ``kafka.consumer.<p>`` for that kind of client. The delivery guarantee is
set by the caller last (the config loader refuses overrides of it). Secrets are revealed here, as
confluent-kafka reads values with ``str()``; the dict returned must never be logged.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from typing import Any, Literal

from confluent_kafka.admin import AdminClient

from mqtt_kafka_sync.config.librdkafka import revealed
from mqtt_kafka_sync.config.model import KafkaConnection

Role = Literal["producer", "consumer", "admin"]
"""``admin``: any client that is neither the producer nor the relay's consumer (admin, lag reader,
a tool's reader): only ``kafka.<p>`` applies to it."""


def client_settings(kafka: Kafka, role: Role, defaults: Mapping[str, str] | None = None) -> dict[str, str]:
    """``role``'s librdkafka settings: ``bootstrap.servers``, ``defaults``, ``kafka.<p>``, its own."""
    kafka = connection(kafka)
    own = {"producer": kafka.producer_overrides, "consumer": kafka.consumer_overrides}.get(role, {})
    return revealed({"bootstrap.servers": kafka.bootstrap_servers, **(defaults or {}), **kafka.common, **own})


def reader_settings(
    kafka: Kafka, name: str, defaults: Mapping[str, str] | None = None
) -> dict[str, str | bool]:
    """An assign-only consumer's (a tool's, the lag reader's, a replay's source): a group of its own,
    which the client requires but never joins, and nothing ever committed."""
    group = {"group.id": f"mqtt-kafka-sync-{name}-{uuid.uuid4().hex[:12]}"}
    never_commit = {"enable.auto.commit": False, "enable.auto.offset.store": False}
    return {**client_settings(kafka, "admin", {**group, **(defaults or {})}), **never_commit}


def admin_client(kafka: Kafka) -> AdminClient:
    """An admin client (topic set-up, lag, a replay's checks) of ``kafka``."""
    settings: dict[str, Any] = client_settings(kafka, "admin")
    return AdminClient(settings, logger=logging.getLogger("librdkafka"))


Kafka = KafkaConnection | str
"""Where a client connects: a bare ``host:port,...`` is a connection without pass-through settings
(the demo, the tests)."""


def connection(kafka: Kafka) -> KafkaConnection:
    return KafkaConnection(kafka) if isinstance(kafka, str) else kafka
