"""Load connector files: Kafka Connect REST JSON (``{"name": ..., "config": {...}}``) or ``.properties``.

Every file is read, its ``${provider:...}`` references resolved, then handed to the builder for its
``connector.class``. Problems from every file are collected before anything is raised.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

from mqtt_kafka_sync.config.model import RELAY_CONNECTOR_CLASS, SOURCE_CONNECTOR_CLASS, ConnectorConfig
from mqtt_kafka_sync.config.properties import PropertiesError, parse_properties
from mqtt_kafka_sync.config.providers import ProviderError, resolve
from mqtt_kafka_sync.config.relay import build_relay_connector
from mqtt_kafka_sync.config.source import build_source_connector
from mqtt_kafka_sync.errors import ConfigError, ConfigProblem

Builder = Callable[[Mapping[str, str], str], tuple[ConnectorConfig | None, list[ConfigProblem]]]
BUILDERS: dict[str, Builder] = {
    SOURCE_CONNECTOR_CLASS: build_source_connector,
    RELAY_CONNECTOR_CLASS: build_relay_connector,
}
"""``connector.class`` -> builder."""

FILE_KEY = "(file)"
_SHAPE = 'a connector file is {"name": "...", "config": {"key": "value", ...}}'
StrPath = str | PathLike[str]


def load_connector(path: StrPath, env: Mapping[str, str]) -> ConnectorConfig:
    """One connector; raises :class:`ConfigError` listing every problem."""
    return load_connectors([path], env)[0]


def load_connectors(paths: Iterable[StrPath], env: Mapping[str, str]) -> list[ConnectorConfig]:
    """Every connector, in order; raises one :class:`ConfigError` listing every problem in every file."""
    configs, problems = _load_all(paths, env)
    if problems:
        raise ConfigError(problems)
    return configs


def check_files(paths: Iterable[StrPath], env: Mapping[str, str]) -> list[ConfigProblem]:
    """Every problem in every file; empty when all are valid."""
    return _load_all(paths, env)[1]


def _load_all(
    paths: Iterable[StrPath], env: Mapping[str, str]
) -> tuple[list[ConnectorConfig], list[ConfigProblem]]:
    configs: list[ConnectorConfig] = []
    problems: list[ConfigProblem] = []
    owners: dict[str, str] = {}
    for path in paths:
        source = str(path)
        raw, failed, found = _read(Path(path), source, env)
        problems += found
        if raw is None:
            continue
        name = raw.get("name", "").strip()
        if name in owners:
            fix = "give each connector its own name"
            problem = f"{name!r} is also the name in {owners[name]}"
            problems.append(ConfigProblem(source, "name", problem, fix))
        elif name:
            owners[name] = source
        config, found = _build(raw, source)
        problems += [p for p in found if p.key not in failed]
        if config is not None:
            configs.append(config)
    return configs, problems


def _build(raw: Mapping[str, str], source: str) -> tuple[ConnectorConfig | None, list[ConfigProblem]]:
    connector_class = raw.get("connector.class", "").strip()
    builder = BUILDERS.get(connector_class or SOURCE_CONNECTOR_CLASS)
    if builder is None:
        fix = "use " + " or ".join(BUILDERS)
        return None, [
            ConfigProblem(source, "connector.class", f"{connector_class!r} is not a connector", fix)
        ]
    return builder(raw, source)


def _read(
    path: Path, source: str, env: Mapping[str, str]
) -> tuple[dict[str, str] | None, set[str], list[ConfigProblem]]:
    """The file's keys with providers resolved, the keys left out for a problem, and the problems."""
    if path.suffix not in (".json", ".properties"):
        fix = "name it *.json or *.properties"
        return None, set(), [ConfigProblem(source, FILE_KEY, "unknown file format", fix)]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        return None, set(), [ConfigProblem(source, FILE_KEY, f"cannot read: {exc.strerror}")]
    except UnicodeDecodeError as exc:
        return None, set(), [ConfigProblem(source, FILE_KEY, f"not UTF-8 text at byte {exc.start}")]
    reader = _json_entries if path.suffix == ".json" else _properties_entries
    entries, problems = reader(text, source)
    if entries is None:
        return None, set(), problems
    raw: dict[str, str] = {}
    for key, value in entries.items():
        try:
            raw[key] = resolve(value, env, path.parent)
        except ProviderError as exc:
            problems.append(ConfigProblem(source, key, exc.problem, exc.fix))
    return raw, {p.key for p in problems} - raw.keys(), problems


def _properties_entries(text: str, source: str) -> tuple[dict[str, str] | None, list[ConfigProblem]]:
    try:
        entries = parse_properties(text)
    except PropertiesError as exc:
        return None, [ConfigProblem(source, FILE_KEY, str(exc))]
    problems: list[ConfigProblem] = []
    lines: dict[str, int] = {}
    for entry in entries:
        if entry.key in lines:
            problem = f"is set twice (lines {lines[entry.key]} and {entry.line})"
            problems.append(ConfigProblem(source, entry.key, problem, "keep one"))
        lines[entry.key] = entry.line
    return {e.key: e.value for e in entries}, problems


def _json_entries(text: str, source: str) -> tuple[dict[str, str] | None, list[ConfigProblem]]:
    twice: list[str] = []

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        keys = [k for k, _ in items]
        twice.extend(k for k in dict.fromkeys(keys) if keys.count(k) > 1)
        return dict(items)

    try:
        doc = json.loads(text, object_pairs_hook=pairs)
    except json.JSONDecodeError as exc:
        problem = f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        return None, [ConfigProblem(source, FILE_KEY, problem)]
    if not isinstance(doc, dict) or not isinstance(doc.get("config"), dict):
        return None, [ConfigProblem(source, FILE_KEY, "expected an object with a config object", _SHAPE)]
    problems = [ConfigProblem(source, k, "is set twice", "keep one") for k in dict.fromkeys(twice)]
    extra = [k for k in doc if k not in ("name", "config")]
    problems += [ConfigProblem(source, k, "unknown top-level key", _SHAPE) for k in extra]
    config: dict[str, Any] = doc["config"]
    if "name" in doc and "name" in config and doc["name"] != config["name"]:
        fix = "they must match, as in Kafka Connect; or remove config.name"
        problems.append(ConfigProblem(source, "name", "differs from the name inside config", fix))
    entries: dict[str, str] = {}
    for key, value in [*config.items(), *([("name", doc["name"])] if "name" in doc else [])]:
        if isinstance(value, bool):
            entries[key] = "true" if value else "false"
        elif isinstance(value, str | int | float):
            entries[key] = str(value)
        elif value is None:
            problems.append(ConfigProblem(source, key, "is null", "remove it to use the default"))
        else:
            fix = "write it as one string; lists comma-separated"
            problems.append(ConfigProblem(source, key, "must be a string, number or boolean", fix))
    return entries, problems
