"""Topic administration the demo, the tests and operators' set-up share."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from mqtt_kafka_sync.errors import KafkaDeliveryError
from mqtt_kafka_sync.kafka.settings import Kafka, admin_client

logger = logging.getLogger(__name__)


def ensure_topics(
    kafka: Kafka,
    topics: Iterable[str],
    *,
    partitions: int = 6,
    replication: int = 1,
    timeout: float = 30.0,
    config: Mapping[str, str] | None = None,
) -> list[str]:
    """Create the topics that do not exist yet; returns the ones created."""
    admin = admin_client(kafka)
    existing = set(admin.list_topics(timeout=timeout).topics)
    wanted = [t for t in dict.fromkeys(topics) if t not in existing]
    if not wanted:
        return []
    futures = admin.create_topics(
        [NewTopic(t, partitions, replication, config=dict(config or {})) for t in wanted],
        operation_timeout=timeout,
    )
    created = []
    for topic, future in futures.items():
        try:
            future.result(timeout)
            created.append(topic)
        except KafkaException as exc:
            err = exc.args[0]
            if isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS:
                continue
            raise KafkaDeliveryError(f"cannot create topic: {err}", topic=topic) from exc
    return created


def topic_message_limits(
    settings: Mapping[str, str], topics: Iterable[str], timeout: float = 5.0
) -> dict[str, int]:
    """Each existing topic's ``max.message.bytes`` (the largest record batch its broker takes).

    ``settings`` are librdkafka settings with ``bootstrap.servers`` (the task's producer settings
    serve). Best effort: topics that do not exist, or a Kafka that does not answer within
    ``timeout``, are left out, and the caller learns their limits from refusals instead.
    """
    wanted = list(dict.fromkeys(topics))
    if not wanted:
        return {}
    config: dict[str, Any] = {**settings, "logger": logger}
    admin = AdminClient(config)
    resources = [ConfigResource(ConfigResource.Type.TOPIC, topic) for topic in wanted]
    limits: dict[str, int] = {}
    try:
        futures = admin.describe_configs(resources, request_timeout=timeout)
        for resource, future in futures.items():
            try:
                entry = future.result(timeout)["max.message.bytes"]
                limits[resource.name] = int(entry.value)
            except (KafkaException, KeyError, ValueError, TypeError, TimeoutError) as exc:
                logger.debug("max.message.bytes of %s not known: %s", resource.name, exc)
    except (KafkaException, ValueError) as exc:
        logger.debug("topic limits not read: %s", exc)
    return limits
