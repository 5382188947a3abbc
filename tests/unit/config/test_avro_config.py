"""Avro route keys and value.converter.* keys: what loads, and every problem, with the key and the file."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path

import pytest

from mqtt_kafka_sync.codec.registry_settings import RegistrySettings
from mqtt_kafka_sync.config.loader import check_files
from mqtt_kafka_sync.config.model import SourceConnectorConfig
from mqtt_kafka_sync.errors import ConfigProblem
from tests.avro_samples import SCHEMAS
from tests.unit.config.files import SOURCE_KEYS, load_source, write_properties

BASE = {
    **SOURCE_KEYS,
    "routes": "r",
    "routes.r.mqtt.topic": "plants/{plant}/devices/{device}/telemetry",
    "routes.r.kafka.topic": "telemetry",
    "routes.r.value.format": "avro",
    "routes.r.value.schema": str(SCHEMAS / "telemetry.v2.avsc"),
    "routes.r.value.fields.device": "{plant}.{device}",
}


def _write(folder: Path, changes: Mapping[str, str | None]) -> Path:
    return write_properties(folder / "c.properties", BASE, changes)


def _problems(folder: Path, changes: Mapping[str, str | None]) -> list[ConfigProblem]:
    return check_files([_write(folder, changes)], {})


def _load(
    folder: Path, changes: Mapping[str, str | None], env: dict[str, str] | None = None
) -> SourceConnectorConfig:
    return load_source(_write(folder, changes), env)


def test_an_avro_route_without_a_registry_uses_single_object_encoding(tmp_path: Path) -> None:
    route = _load(tmp_path, {}).routes[0]
    assert route.value_format == "avro" and route.value is not None
    assert route.value.schema is not None and route.value.schema.fullname == "io.mqttkafkasync.v1.Telemetry"
    assert route.value.fields == (("device", "{plant}.{device}"),)
    assert route.value.registry is None and route.value.subject is None
    assert route.value.unknown_fields == "reject"


def test_a_relative_schema_path_is_relative_to_the_connector_file(tmp_path: Path) -> None:
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "telemetry.v1.avsc").write_text((SCHEMAS / "telemetry.v1.avsc").read_text())
    (tmp_path / "connectors").mkdir()
    route = _load(tmp_path / "connectors", {"routes.r.value.schema": "../schemas/telemetry.v1.avsc"}).routes[
        0
    ]
    assert route.value is not None and route.value.schema is not None
    assert Path(route.value.schema.source).resolve() == tmp_path / "schemas" / "telemetry.v1.avsc"


@pytest.mark.parametrize(
    ("strategy", "topic", "subject"),
    [
        (None, "telemetry", "telemetry-value"),
        ("io.confluent.kafka.serializers.subject.TopicNameStrategy", "telemetry", "telemetry-value"),
        ("RecordNameStrategy", "site-{plant}", "io.mqttkafkasync.v1.Telemetry"),
        ("TopicRecordNameStrategy", "telemetry", "telemetry-io.mqttkafkasync.v1.Telemetry"),
    ],
)
def test_registry_settings_and_subjects(
    tmp_path: Path, strategy: str | None, topic: str, subject: str
) -> None:
    config = _load(
        tmp_path,
        {
            "routes.r.kafka.topic": topic,
            "value.converter.schema.registry.url": "https://registry.example:8081",
            "value.converter.basic.auth.user.info": "${env:SR_USER_INFO}",
            "value.converter.value.subject.name.strategy": strategy,
        },
        env={"SR_USER_INFO": "bridge:s3cret"},
    )
    value = config.routes[0].value
    assert value is not None and value.registry is not None
    assert value.subject == subject
    assert value.registry.url == "https://registry.example:8081"
    assert value.registry.user_info is not None and value.registry.user_info.reveal() == "bridge:s3cret"
    assert "s3cret" not in repr(config) and "s3cret" not in repr(value.registry)


def test_a_registry_subject_names_the_schema(tmp_path: Path) -> None:
    value = (
        _load(
            tmp_path,
            {
                "routes.r.value.schema": "plant-telemetry",
                "value.converter.schema.registry.url": "http://r:8081",
            },
        )
        .routes[0]
        .value
    )
    assert value is not None and value.schema is None and value.subject == "plant-telemetry"


def test_credentials_in_the_url_are_never_shown() -> None:
    settings = RegistrySettings(url="https://bridge:s3cret@registry.example:8081", credentials_source="URL")
    assert settings.safe_url == "https://****@registry.example:8081"
    assert "s3cret" not in repr(settings)


def _incompatible(folder: Path) -> Path:
    fields = json.loads((SCHEMAS / "telemetry.v1.avsc").read_text())
    (folder / "reading.v1.avsc").write_text(json.dumps(fields))
    fields["fields"].append({"name": "site", "type": "string"})
    (folder / "reading.v2.avsc").write_text(json.dumps(fields))
    return folder / "reading.v2.avsc"


PROBLEMS = [
    ({"routes.r.value.schema": None}, "routes.r.value.schema", "is required with value.format=avro"),
    (
        {"routes.r.value.format": "json", "routes.r.value.fields.device": None},
        "routes.r.value.schema",
        "is only used with value.format=avro",
    ),
    (
        {"routes.r.value.format": "bytes", "routes.r.value.schema": None},
        "routes.r.value.fields.device",
        "only used",
    ),
    (
        {"routes.r.value.schema": "telemetry"},
        "routes.r.value.schema",
        "names a registry subject, and no registry",
    ),
    ({"routes.r.value.schema": "missing.avsc"}, "routes.r.value.schema", "missing.avsc: cannot read"),
    (
        {"routes.r.value.fields.devise": "{device}"},
        "routes.r.value.fields.devise",
        "(did you mean 'device'?)",
    ),
    (
        {"routes.r.value.fields.value": "{device}"},
        None,
        None,
    ),  # double from text: allowed, checked per message
    ({"routes.r.value.fields.device": "{site}"}, "routes.r.value.fields.device", "{site} is not defined"),
    ({"routes.r.value.unknown.fields": "keep"}, "routes.r.value.unknown.fields", "'keep' is not allowed"),
    (
        {"value.converter.schema.registry.url": "registry:8081"},
        "value.converter.schema.registry.url",
        "is not an http",
    ),
    (
        {"value.converter.basic.auth.user.info": "a:b"},
        "value.converter.basic.auth.user.info",
        "no registry is",
    ),
    (
        {"value.converter.schema.registry.url": "http://r:8081", "routes.r.kafka.topic": "site-{plant}"},
        "routes.r.kafka.topic",
        "has placeholders, but the TopicNameStrategy subject",
    ),
    (
        {
            "value.converter.schema.registry.url": "http://r",
            "value.converter.value.subject.name.strategy": "Mine",
        },
        "value.converter.value.subject.name.strategy",
        "'Mine' is not a subject name strategy",
    ),
    (
        {
            "value.converter.schema.registry.url": "http://r",
            "value.converter.basic.auth.credentials.source": "URL",
        },
        "value.converter.basic.auth.credentials.source",
        "the URL has no user",
    ),
]


@pytest.mark.parametrize(("changes", "key", "problem"), PROBLEMS)
def test_problems(
    tmp_path: Path, changes: dict[str, str | None], key: str | None, problem: str | None
) -> None:
    found = _problems(tmp_path, changes)
    if key is None or problem is None:
        assert found == []
        return
    assert [(p.key, problem in p.problem) for p in found] == [(key, True)], found


def test_a_field_text_cannot_fill_is_refused(tmp_path: Path) -> None:
    found = _problems(
        tmp_path,
        {
            "routes.r.value.schema": str(SCHEMAS / "command.v1.avsc"),
            "routes.r.value.fields.params": "{device}",
        },
    )
    assert [(p.key, p.problem) for p in found] == [
        ("routes.r.value.fields.params", "field 'params' is of type map, which the topic's text cannot fill")
    ]


def test_an_incompatible_new_version_is_reported_with_both_files_and_the_field(tmp_path: Path) -> None:
    found = _problems(tmp_path, {"routes.r.value.schema": str(_incompatible(tmp_path))})
    assert len(found) == 1
    problem = found[0]
    assert problem.source == str(tmp_path / "c.properties") and problem.key == "routes.r.value.schema"
    assert problem.problem == (
        f"{tmp_path / 'reading.v2.avsc'}: field site: cannot read records written with reading.v1.avsc: "
        "was added without a default, so records that lack it cannot be read"
    )
    assert problem.fix == "give the new field a default"


def test_a_schema_that_does_not_parse_is_reported_with_the_file(tmp_path: Path) -> None:
    (tmp_path / "bad.avsc").write_text('{"type": "record", "name": "B", "fields": [{"name": "x"}]}')
    found = _problems(tmp_path, {"routes.r.value.schema": "bad.avsc", "routes.r.value.fields.device": None})
    assert len(found) == 1 and found[0].problem.startswith(
        f"{tmp_path / 'bad.avsc'}: not a valid Avro schema"
    )


def test_value_fields_keys_of_unlisted_routes_are_unknown(tmp_path: Path) -> None:
    found = _problems(tmp_path, {"routes.q.value.fields.device": "{device}"})
    assert [p.key for p in found] == ["routes.q.value.fields.device"]
    assert "route 'q' is not listed in routes" in found[0].problem
