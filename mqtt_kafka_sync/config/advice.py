"""Config that is valid but almost certainly not what was meant: reported as warnings, not errors."""

from __future__ import annotations

from collections.abc import Sequence

from mqtt_kafka_sync.config.model import ConnectorConfig, SourceConnectorConfig
from mqtt_kafka_sync.errors import ConfigProblem
from mqtt_kafka_sync.routing.pattern import compile_pattern, covers


def config_warnings(configs: Sequence[ConnectorConfig]) -> list[ConfigProblem]:
    """Every warning for ``configs``: today, routes an earlier route hides completely."""
    found: list[ConfigProblem] = []
    for config in configs:
        if isinstance(config, SourceConnectorConfig):
            found += hidden_routes(config)
    return found


def hidden_routes(config: SourceConnectorConfig) -> list[ConfigProblem]:
    """Routes that can never match: the first matching route wins, and an earlier one takes every
    topic they would (its pattern covers theirs)."""
    found = []
    filters = [(route.name, compile_pattern(route.mqtt_topic).filter) for route in config.routes]
    for index, (name, inner) in enumerate(filters):
        for earlier, outer in filters[:index]:
            if covers(outer, inner):
                found.append(
                    ConfigProblem(
                        config.source,
                        f"routes.{name}.mqtt.topic",
                        f"route {name!r} can never match: route {earlier!r}, listed before it, takes every "
                        f"topic it would ({outer!r} covers {inner!r})",
                        f"list {name!r} before {earlier!r} in routes, or narrow routes.{earlier}.mqtt.topic",
                    )
                )
                break
    return found
