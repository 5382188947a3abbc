"""Avro route values and the schema-registry converter: their keys, their model, and their checks.

A route with ``value.format=avro`` names its schema in ``value.schema`` (a ``.avsc`` file, or a
registry subject) and may fill record fields from the MQTT topic with ``value.fields.<field>``.
The ``value.converter.*`` keys (Kafka Connect's names for Confluent's AvroConverter) choose the
wire format: with ``value.converter.schema.registry.url`` set, Confluent's (magic byte, schema id);
without it, Avro single-object encoding (marker, fingerprint).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal, Protocol
from urllib.parse import urlsplit

from mqtt_kafka_sync.codec.registry_settings import RegistrySettings, SubjectStrategy
from mqtt_kafka_sync.codec.schema import AvroSchema, SchemaFileError, check_evolution, load_schema_file
from mqtt_kafka_sync.config.keyspec import BadValue, KeySpec
from mqtt_kafka_sync.config.model import AvroValueConfig
from mqtt_kafka_sync.routing.pattern import TopicPattern
from mqtt_kafka_sync.routing.template import TemplateError, compile_template
from mqtt_kafka_sync.secret import Secret

_STRATEGY_PACKAGE = "io.confluent.kafka.serializers.subject."
_STRATEGIES: tuple[SubjectStrategy, ...] = (
    "TopicNameStrategy",
    "RecordNameStrategy",
    "TopicRecordNameStrategy",
)

FIELDS_PREFIX = "value.fields."
"""``routes.<route>.value.fields.<field>``: the one route key whose name has a part of its own."""


def _registry_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.scheme == "mock" or (parts.scheme in ("http", "https") and parts.hostname):
        return text
    raise BadValue(f"{text!r} is not an http:// or https:// URL", "e.g. http://schema-registry:8081")


def _strategy(text: str) -> SubjectStrategy:
    short = text.removeprefix(_STRATEGY_PACKAGE)
    for strategy in _STRATEGIES:
        if short == strategy:
            return strategy
    raise BadValue(f"{text!r} is not a subject name strategy", "use " + ", ".join(_STRATEGIES))


SCHEMA_KEY = KeySpec(
    "routes.<route>.value.schema",
    "str",
    "With `value.format=avro`, the writer schema: a `.avsc` file (a relative path is taken relative to "
    "the connector file's folder; versions named `<name>.v<N>.avsc` must each read what the one "
    "before wrote), or, with a schema registry, a subject whose latest version is used.",
    "../schemas/telemetry.v2.avsc",
)
FIELD_KEY = KeySpec(
    "routes.<route>.value.fields.<field>",
    "str",
    "With `value.format=avro`, fills record field `<field>` from the MQTT topic: a template over the "
    "route's placeholders, so devices need not repeat their id in the payload. A payload that has "
    "the field must agree with the topic. The field must be a string, enum, int, long, float, "
    "double or boolean (or a union of null and one of those); the text is converted to its type.",
    "{plant}.{device}",
)
UNKNOWN_FIELDS_KEY = KeySpec(
    "routes.<route>.value.unknown.fields",
    "enum",
    "With `value.format=avro`, what to do with payload fields the schema does not have: `reject` sends "
    "the message to the dead-letter topic, `ignore` drops those fields.",
    "reject",
    default="reject",
    choices=("reject", "ignore"),
)
AVRO_ROUTE_KEYS = {"value.schema": SCHEMA_KEY, "value.unknown.fields": UNKNOWN_FIELDS_KEY}

CONVERTER_KEYS = (
    KeySpec(
        "value.converter.schema.registry.url",
        "str",
        "Confluent-compatible schema registry for Avro routes. When set, values use Confluent's wire "
        "format (magic byte 0, 4-byte schema id, Avro body), read by KafkaAvroDeserializer; when not "
        "set, Avro single-object encoding (marker C3 01, 8-byte CRC-64-AVRO fingerprint, Avro body). "
        "Schemas are registered (or looked up) when a task starts. `mock://<scope>` is confluent-kafka's "
        "in-process registry, for tests only.",
        "http://schema-registry:8081",
        check=_registry_url,
    ),
    KeySpec(
        "value.converter.basic.auth.credentials.source",
        "enum",
        "Where the registry's basic-auth credentials come from: `USER_INFO` "
        "(`value.converter.basic.auth.user.info`) or `URL` (`https://user:password@host`).",
        "USER_INFO",
        default="USER_INFO",
        choices=("USER_INFO", "URL"),
    ),
    KeySpec(
        "value.converter.basic.auth.user.info",
        "secret",
        "`user:password` for the registry's basic auth; never printed. Use a provider.",
        "${env:SCHEMA_REGISTRY_USER_INFO}",
    ),
    KeySpec(
        "value.converter.auto.register.schemas",
        "bool",
        "Register each route's schema under its subject when a task starts (the registry checks "
        "compatibility then). With false, the schema must already be registered there.",
        "true",
        default="true",
    ),
    KeySpec(
        "value.converter.value.subject.name.strategy",
        "str",
        "Subject of a route's schema: `TopicNameStrategy` (`<topic>-value`), `RecordNameStrategy` "
        "(the record's full name) or `TopicRecordNameStrategy` (`<topic>-<record full name>`); with or "
        f"without the `{_STRATEGY_PACKAGE}` prefix. The topic strategies need a `kafka.topic` without "
        "placeholders, since the schema id is fixed when a task starts.",
        "RecordNameStrategy",
        default=f"{_STRATEGY_PACKAGE}TopicNameStrategy",
        check=_strategy,
    ),
)


class Problems(Protocol):
    """Where a builder reports what is wrong (the source builder's problem list)."""

    source: str

    def add(self, key: str, problem: str, fix: str = "") -> None: ...

    def __len__(self) -> int: ...


def registry_settings(values: Mapping[str, Any], problems: Problems) -> RegistrySettings | None:
    """From the typed ``value.converter.*`` values; None (single-object encoding) without a URL."""
    url: str | None = values["value.converter.schema.registry.url"]
    user_info: Secret | None = values["value.converter.basic.auth.user.info"]
    source: Literal["USER_INFO", "URL"] = (
        values["value.converter.basic.auth.credentials.source"] or "USER_INFO"
    )
    if url is None:
        if user_info is not None:
            fix = "set value.converter.schema.registry.url, or remove it"
            problems.add("value.converter.basic.auth.user.info", "is set, but no registry is", fix)
        return None
    if source == "URL" and urlsplit(url).username is None:
        fix = "write https://user:password@host, or use USER_INFO"
        problems.add("value.converter.basic.auth.credentials.source", "URL, but the URL has no user", fix)
    return RegistrySettings(
        url=url,
        user_info=user_info,
        credentials_source=source,
        auto_register=values["value.converter.auto.register.schemas"] is not False,
        subject_strategy=values["value.converter.value.subject.name.strategy"] or "TopicNameStrategy",
    )


def route_value(
    name: str,
    got: Mapping[str, Any],
    *,
    pattern: TopicPattern,
    raw: Mapping[str, str],
    problems: Problems,
    registry: RegistrySettings | None,
) -> AvroValueConfig | None:
    """The Avro value of route ``name`` (``got``: its typed route keys); None for other formats, or
    after a problem."""
    prefix = f"routes.{name}."
    field_keys = {k: v for k, v in raw.items() if k.startswith(prefix + FIELDS_PREFIX) and v.strip()}
    if got["value.format"] != "avro":
        unused = [
            k for k in (prefix + "value.schema", prefix + "value.unknown.fields") if raw.get(k, "").strip()
        ]
        for key in [*unused, *field_keys]:
            problems.add(key, "is only used with value.format=avro", f"remove {key}")
        return None
    before = len(problems)
    schema, subject = _schema_or_subject(got["value.schema"], prefix + "value.schema", problems, registry)
    fields = _fields(prefix, field_keys, pattern, schema, problems)
    if schema is not None and registry is not None:
        topic = _literal_topic(got["kafka.topic"], pattern)
        if topic is None and registry.subject_strategy != "RecordNameStrategy":
            problems.add(
                prefix + "kafka.topic",
                f"has placeholders, but the {registry.subject_strategy} subject of the schema must be "
                "known when a task starts",
                "set value.converter.value.subject.name.strategy=RecordNameStrategy",
            )
            return None
        subject = registry.subject(topic or "", schema.fullname)
    if len(problems) > before or fields is None or (schema is None and subject is None):
        return None
    return AvroValueConfig(
        schema=schema,
        subject=subject,
        fields=fields,
        unknown_fields=got["value.unknown.fields"] or "reject",
        registry=registry,
    )


def _schema_or_subject(
    text: str | None, key: str, problems: Problems, registry: RegistrySettings | None
) -> tuple[AvroSchema | None, str | None]:
    """The schema of a ``.avsc`` file, or the registry subject ``text`` names; (None, None) after a
    problem."""
    if text is None:
        problems.add(
            key, "is required with value.format=avro", f"set it, e.g. {key}=schemas/telemetry.v2.avsc"
        )
        return None, None
    if text.endswith(".avsc"):
        return _schema_file(text, key, problems), None
    if registry is None:
        problems.add(
            key,
            f"{text!r} is not a .avsc file, so it names a registry subject, and no registry is set",
            "set value.converter.schema.registry.url, or name a .avsc file",
        )
        return None, None
    return None, text


def _schema_file(text: str, key: str, problems: Problems) -> AvroSchema | None:
    """The schema of the file, if it parses (even when its versions do not evolve compatibly, so the
    route's other keys can be checked against it); every problem is reported."""
    path = Path(os.path.normpath(Path(problems.source).parent / text))
    found = check_evolution(path)
    for problem in found:
        fix = "give the new field a default" if "without a default" in problem.problem else ""
        problems.add(key, str(problem), fix)
    if any(p.path == str(path) and p.field is None for p in found):
        return None  # the file itself does not load: reported above
    try:
        return load_schema_file(path)
    except SchemaFileError as exc:
        if not found:
            problems.add(key, str(exc))
        return None


def _fields(
    prefix: str,
    field_keys: Mapping[str, str],
    pattern: TopicPattern,
    schema: AvroSchema | None,
    problems: Problems,
) -> tuple[tuple[str, str], ...] | None:
    """The ``value.fields.*`` of a route; checked against ``schema`` unless it comes from a registry
    (then the task checks them when it fetches the schema)."""
    from mqtt_kafka_sync.codec.avro import field_text_parser  # noqa: PLC0415 - keeps config light

    fields: list[tuple[str, str]] = []
    ok = True
    for key, template in sorted(field_keys.items()):
        name = key.removeprefix(prefix + FIELDS_PREFIX)
        try:
            compile_template(template.strip(), pattern)
        except TemplateError as exc:
            problems.add(key, str(exc))
            ok = False
            continue
        if schema is not None:
            try:
                field_text_parser(schema, name)
            except ValueError as exc:
                fix = "name a field of the schema that is a string, enum, number or boolean"
                problems.add(key, str(exc), fix)
                ok = False
                continue
        fields.append((name, template.strip()))
    return tuple(fields) if ok else None


def _literal_topic(text: str, pattern: TopicPattern) -> str | None:
    """The Kafka topic of a template without placeholders; None when it has some."""
    template = compile_template(text, pattern)
    return None if template.names else "".join(template.literals)
