"""``mqtt.subscription=sharded``: the keys of sharded mode, and the checks that need several keys.

In sharded mode (``ingest/shards.py``) each filter of ``mqtt.shards`` is one MQTT session, owned by
whichever worker the Kafka consumer group ``mqtt.shards.group`` assigns partition ``i`` of the
coordination topic ``mqtt.shards.topic`` to. A topic matching two shard filters would be delivered
by two sessions (twice, and in no particular order between them), so filters must not overlap; a
filter that no route matches would only feed the dead-letter topic.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from collections.abc import Mapping
from typing import Any, get_args

from mqtt_kafka_sync.config.checks import mqtt_filters
from mqtt_kafka_sync.config.keycheck import Problems
from mqtt_kafka_sync.config.keyspec import BadValue, KeySpec
from mqtt_kafka_sync.config.model import MQTT_SHARDS_SESSION_TIMEOUT_MS, ShardsConfig, SubscriptionMode
from mqtt_kafka_sync.routing.pattern import TopicPattern, overlaps
from mqtt_kafka_sync.routing.router import kafka_topic_problem

SUBSCRIPTION = "mqtt.subscription"
SHARED_GROUP = "mqtt.shared.group"
SHARDS = "mqtt.shards"
SHARDS_TOPIC = "mqtt.shards.topic"
SHARDS_GROUP = "mqtt.shards.group"
SHARDS_SESSION_TIMEOUT = "mqtt.shards.session.timeout.ms"
SHARDS_FIX = "mqtt.shards=plants/p0/#,plants/p1/#"
_SHARD_FIX = "list filters no topic can match twice, e.g. plants/p0/#,plants/p1/#"


def filters_overlap(first: str, second: str) -> bool:
    """True when some topic matches both MQTT filters.

    Beyond :func:`~mqtt_kafka_sync.routing.pattern.overlaps`: a wildcard in the first level never
    matches a topic starting with ``$`` (MQTT 5, 4.7.2), so ``#`` and ``$SYS/#`` do not overlap.
    """
    a, b = first.split("/", maxsplit=1)[0], second.split("/", maxsplit=1)[0]
    if (a.startswith("$") and b in ("+", "#")) or (b.startswith("$") and a in ("+", "#")):
        return False
    return overlaps(first, second)


def shard_filters(items: tuple[str, ...]) -> tuple[str, ...]:
    """``mqtt.shards``: plain, distinct MQTT filters no topic matches twice."""
    for item in items:
        if item.startswith("$share/"):
            raise BadValue(
                f"{item!r} is a shared subscription: a shard's session subscribes to its filter alone",
                f"write the plain filter, e.g. {item.split('/', 2)[-1]!r}",
            )
        mqtt_filters((item,))  # a valid plain filter
        if items.count(item) > 1:
            raise BadValue(f"{item!r} is listed twice", "list each shard once")
    for first, second in itertools.combinations(items, 2):
        if filters_overlap(first, second):
            raise BadValue(
                f"shards {first!r} and {second!r} overlap: a topic matching both would be delivered "
                "by two sessions, twice and out of order",
                _SHARD_FIX,
            )
    return items


def _kafka_name(text: str) -> str:
    if problem := kafka_topic_problem(text):
        raise BadValue(problem, "e.g. mqtt-kafka-sync-plant-telemetry-shards")
    return text


SHARD_KEYS = (
    KeySpec(
        SUBSCRIPTION,
        "enum",
        "`shared`: every task subscribes to `mqtt.topics` through the shared subscription "
        "`mqtt.shared.group` (the broker spreads messages, not devices, over tasks: one device's "
        "messages may reach Kafka out of order with two tasks or more). `sharded`: each filter of "
        "`mqtt.shards` is one MQTT session, owned by one worker at a time through a Kafka consumer "
        "group, so each device's messages reach Kafka in publish order with any number of workers "
        "(docs/operations.md, choosing the mode).",
        "sharded",
        default="shared",
        choices=get_args(SubscriptionMode),
    ),
    KeySpec(
        SHARDS,
        "list",
        "With `mqtt.subscription=sharded`: comma-separated MQTT filters, one shard (one MQTT session) "
        "each, e.g. one per site or line. No topic may match two of them, every one must reach a route, "
        "and no `$share/`. Each shard's session has a client id of its own, `<mqtt.client.id>-<filter "
        "words>-<hash>`, whichever worker owns it. The shard list fixes the coordination topic's "
        "partition count: changing the number of shards needs a new `mqtt.shards.topic`.",
        "plants/p0/#,plants/p1/#,plants/p2/#",
        default_doc="none; required with `mqtt.subscription=sharded`",
        check=shard_filters,
    ),
    KeySpec(
        SHARDS_TOPIC,
        "str",
        "Coordination topic of sharded mode: one partition per shard, created by the connector, never "
        "written to; the group's assignment of partition `i` is the ownership of shard `i`.",
        "mqtt-kafka-sync-plant-telemetry-shards",
        default_doc="`mqtt-kafka-sync-<name>-shards`",
        check=_kafka_name,
    ),
    KeySpec(
        SHARDS_GROUP,
        "str",
        "Kafka consumer group the workers of a sharded connector join (cooperative-sticky assignment).",
        "mqtt-kafka-sync-plant-telemetry-shards",
        default_doc="`mqtt-kafka-sync-<name>-shards`",
        pattern=r"[A-Za-z0-9_.-]+",
        pattern_doc="letters, digits, '_', '.' and '-'",
    ),
    KeySpec(
        SHARDS_SESSION_TIMEOUT,
        "int",
        "Consumer-group session timeout of sharded mode: how long after a worker stops heartbeating "
        "(crash, network partition) its shards move to live workers. Lower is faster failover and more "
        "spurious moves on a slow network; Kafka brokers accept 6000 to 1800000 by default "
        "(`group.min.session.timeout.ms`, `group.max.session.timeout.ms`).",
        "10000",
        default=str(MQTT_SHARDS_SESSION_TIMEOUT_MS),
        minimum=1000,
        maximum=1_800_000,
    ),
)


def default_shards_name(connector: str) -> str:
    """The coordination topic's and the group's name unless set."""
    return f"mqtt-kafka-sync-{connector}-shards"


def shards_config(values: Mapping[str, Any], connector: str, client_id: str) -> ShardsConfig | None:
    """The shards of a config whose keys passed :func:`shard_problems`; None in shared mode."""
    if values[SUBSCRIPTION] != "sharded":
        return None
    filters: tuple[str, ...] = values[SHARDS]
    return ShardsConfig(
        filters=filters,
        client_ids=tuple(shard_client_id(client_id, f) for f in filters),
        topic=values[SHARDS_TOPIC] or default_shards_name(connector),
        group=values[SHARDS_GROUP] or default_shards_name(connector),
        session_timeout_ms=values[SHARDS_SESSION_TIMEOUT],
    )


def shard_problems(
    values: Mapping[str, Any],
    raw: Mapping[str, str],
    patterns: list[TopicPattern],
    problems: Problems,
) -> None:
    """Checks across keys: a shared group in shared mode; shards only (and always) in sharded mode,
    each reaching a route."""
    mode, shards = values[SUBSCRIPTION], values[SHARDS]
    group = raw.get(SHARED_GROUP)
    if mode != "sharded" and (group is None or not group.strip()):
        state = "is required" if group is None else "is required but empty"
        problems.add(SHARED_GROUP, state, f"set it, e.g. {SHARED_GROUP}=mks")  # as for any required key
    if mode != "sharded":
        for key in (SHARDS, SHARDS_TOPIC, SHARDS_GROUP, SHARDS_SESSION_TIMEOUT):
            if (raw.get(key) or "").strip():
                problems.add(key, "is only used with mqtt.subscription=sharded", "set that, or remove it")
        return
    if shards is None:
        if not (raw.get(SHARDS) or "").strip():
            problems.add(SHARDS, "is required with mqtt.subscription=sharded", f"set it, e.g. {SHARDS_FIX}")
        return
    if (raw.get("mqtt.topics") or "").strip():
        problems.add(
            "mqtt.topics", "is not used in sharded mode: mqtt.shards says what to subscribe", "remove it"
        )
    if values.get("throttle.lag.groups"):
        problems.add(
            "throttle.lag.groups",
            "the lag throttle does not pace sharded mode yet",
            "remove the throttle.* keys, or use mqtt.subscription=shared",
        )
    for shard in shards:
        if patterns and not any(filters_overlap(shard, p.filter) for p in patterns):
            routed = ", ".join(repr(p.text) for p in patterns)
            problems.add(
                SHARDS,
                f"no route matches a topic of shard {shard!r} (routes: {routed})",
                "fix the filter, or add a route for those topics",
            )


_UNSAFE = re.compile(r"[^A-Za-z0-9]+")


def shard_client_id(prefix: str, shard: str) -> str:
    """The MQTT client id of ``shard``'s session: stable for the filter, whoever owns it.

    Made from the filter, not its place in the list: the broker keeps a session's subscriptions,
    so a list edited around it must not hand one session another filter. Readable words of the
    filter (letters and digits, at most 24) for the broker's log, and a hash for uniqueness.
    """
    words = _UNSAFE.sub("-", shard).strip("-")[:24].strip("-") or "all"
    digest = hashlib.sha256(shard.encode()).hexdigest()[:8]
    return f"{prefix}-{words}-{digest}"
