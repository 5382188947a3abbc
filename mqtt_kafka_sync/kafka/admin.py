"""Topic administration the demo, the tests and operators' set-up share."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import Future
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource  # type: ignore[attr-defined]
from confluent_kafka.cimpl import NewTopic

from mqtt_kafka_sync.errors import KafkaDeliveryError
from mqtt_kafka_sync.kafka.settings import Kafka, admin_client

logger = logging.getLogger(__name__)

T = TypeVar("T")


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
        _, failure = result_or_failure(future, timeout, (KafkaException,))
        if failure is None:
            created.append(topic)
            continue
        err = failure.args[0]
        if not (isinstance(err, KafkaError) and err.code() == KafkaError.TOPIC_ALREADY_EXISTS):
            raise KafkaDeliveryError(f"cannot create topic: {err}", topic=topic) from failure
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
    except (KafkaException, ValueError) as exc:
        logger.debug("topic limits not read: %s", exc)
        return limits
    for resource, future in futures.items():
        if (limit := _limit(resource.name, future, timeout)) is not None:
            limits[resource.name] = limit
    return limits


def _limit(topic: str, future: Future[Any], timeout: float) -> int | None:
    """One topic's ``max.message.bytes``, or None."""
    config, failure = result_or_failure(future, timeout, (KafkaException, TimeoutError))
    if failure is not None or config is None:
        logger.debug("max.message.bytes of %s not known: %s", topic, failure or "no answer")
        return None
    try:
        return int(config["max.message.bytes"].value)
    except (KeyError, ValueError, TypeError) as exc:
        logger.debug("max.message.bytes of %s not known: %s", topic, exc)
        return None


def result_or_failure(
    future: Future[T], timeout: float, failures: tuple[type[Exception], ...]
) -> tuple[T | None, Exception | None]:
    """``future``'s result and None, or None and its exception (one of ``failures``; others propagate).

    A failed future keeps its exception, whose traceback holds the frame that asked for the result,
    and each frame its caller's: the admin client of :func:`topic_message_limits` then lived (its
    connections, and its attempts against a Kafka that refuses us, about one a second) until the
    next full garbage collection, rare in a task process. The traceback is dropped here, which
    breaks that cycle for every caller.
    """
    try:
        return future.result(timeout), None
    except failures as exc:
        exc.__traceback__ = None
        return None, exc
