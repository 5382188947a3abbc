"""The supervisor's consumer lag: which groups its one lag reader process reads, how often, for whom.

Two users read lag under ``mqtt-kafka-sync run``: the metrics (with telemetry on: every relay
connector's ``kafka.group.id`` on the topics it subscribes to, and every source connector's
``throttle.lag.groups`` on the topics its routes write, with the time lag, every
``TelemetrySettings.lag_interval_s``) and the throttled ingest tasks (their
``throttle.lag.groups`` every ``throttle.lag.interval.seconds``). :func:`lag_watches` merges them:
one watch per group, on every topic anyone wants, at the shortest interval anyone needs. Each
throttled connector gets one :class:`~mqtt_kafka_sync.kafka.lag_feed.LagFeed` (its tasks share the
same lag), which its task processes read through :func:`fed_lag`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from mqtt_kafka_sync.config.model import (
    ConnectorConfig,
    KafkaConnection,
    RelayConnectorConfig,
    SourceConnectorConfig,
)
from mqtt_kafka_sync.kafka.lag_feed import FedLagReader, LagFeed
from mqtt_kafka_sync.kafka.lag_topics import AnyTopic, SubscribedTopics, TopicFilter

if TYPE_CHECKING:  # imported where lag is read: a supervisor without lag to read loads neither
    from mqtt_kafka_sync.kafka.lag_hub import GroupKey, LagHub, LagWatch

STALE_INTERVALS = 2.0
"""A throttle whose feed has had no new reading for this many of its intervals holds its rate."""


def lag_watches(configs: Iterable[ConnectorConfig], metrics_interval: float | None) -> list[LagWatch]:
    """The groups to read; ``metrics_interval``: None without metrics (then only throttles' groups).

    A group is read once per Kafka cluster (``kafka.bootstrap.servers``), with the connection
    settings (security) of the first connector that names it.
    """
    from mqtt_kafka_sync.kafka.lag_hub import LagWatch  # noqa: PLC0415 - see the imports
    from mqtt_kafka_sync.throttle.lag_throttle import route_topics  # noqa: PLC0415

    topics: dict[GroupKey, list[TopicFilter]] = {}
    intervals: dict[GroupKey, list[float]] = {}
    kafkas: dict[GroupKey, KafkaConnection] = {}

    def add(kafka: KafkaConnection, group: str, topic_filter: TopicFilter, interval: float | None) -> None:
        key = (kafka.bootstrap_servers, group)
        kafkas.setdefault(key, kafka)
        topics.setdefault(key, []).append(topic_filter)
        intervals.setdefault(key, [])
        if interval is not None:
            intervals[key].append(interval)

    for config in configs:
        if isinstance(config, RelayConnectorConfig):
            if metrics_interval is not None:
                add(
                    config.kafka,
                    config.kafka_group_id,
                    SubscribedTopics(config.kafka_topics()),
                    metrics_interval,
                )
        elif config.throttle is not None:
            for group in config.throttle.groups:
                add(config.kafka, group, route_topics(config.routes), config.throttle.interval_seconds)
                add(config.kafka, group, route_topics(config.routes), metrics_interval)
    return [
        LagWatch(kafkas[key], key[1], AnyTopic(topics[key]), min(every), metrics_interval)
        for key, every in intervals.items()
    ]


def throttle_feeds(configs: Iterable[ConnectorConfig], hub: LagHub | None) -> dict[str, LagFeed]:
    """Connector name -> the feed ``hub`` writes its throttle's lag into (throttled connectors only)."""
    from mqtt_kafka_sync.throttle.lag_throttle import route_topics  # noqa: PLC0415 - see the imports

    feeds: dict[str, LagFeed] = {}
    for config in configs:
        if hub is None or not isinstance(config, SourceConnectorConfig) or config.throttle is None:
            continue
        feed = feeds[config.name] = LagFeed()
        hub.feed(feed, config.kafka.bootstrap_servers, config.throttle.groups, route_topics(config.routes))
    return feeds


def fed_lag(config: SourceConnectorConfig, feed: LagFeed) -> FedLagReader:
    """The throttle's lag source in a task process: ``feed``, stale after :data:`STALE_INTERVALS`."""
    interval = config.throttle.interval_seconds if config.throttle is not None else 1.0
    return FedLagReader(feed, STALE_INTERVALS * interval)
