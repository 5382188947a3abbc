"""``kafka.<property>`` for every Kafka client, its precedence, refusals, secrets and TLS files;
``--command-config``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from mqtt_kafka_sync.config.command_config import load_command_config
from mqtt_kafka_sync.config.loader import check_files, load_connector
from mqtt_kafka_sync.config.model import KafkaConnection, RelayConnectorConfig
from mqtt_kafka_sync.devstack.certs import CertSet
from mqtt_kafka_sync.errors import ConfigError, ConfigProblem
from mqtt_kafka_sync.kafka.consumer import consumer_config
from mqtt_kafka_sync.kafka.producer import producer_config
from mqtt_kafka_sync.kafka.settings import client_settings, reader_settings
from mqtt_kafka_sync.secret import Secret
from tests.unit.config.files import RELAY_KEYS, SOURCE_KEYS, load_source, write_properties

SOURCE = {**SOURCE_KEYS, "routes": "r", "routes.r.mqtt.topic": "plants/#", "routes.r.kafka.topic": "t"}
RELAY = {
    **RELAY_KEYS,
    "routes": "cmd",
    "routes.cmd.kafka.topic": "commands",
    "routes.cmd.kafka.key": "{plant}.{device}",
    "routes.cmd.mqtt.topic": "plants/{plant}/devices/{device}/commands",
}
SASL = {
    "kafka.security.protocol": "SASL_SSL",
    "kafka.sasl.mechanism": "SCRAM-SHA-512",
    "kafka.sasl.username": "bridge",
    "kafka.sasl.password": "s3cr3t-pw",
}


def _problems(
    tmp_path: Path, changes: Mapping[str, str | None], base: Mapping[str, str] = SOURCE
) -> list[ConfigProblem]:
    return check_files([write_properties(tmp_path / "c.properties", base, changes)], {})


def test_kafka_properties_reach_every_client_and_client_keys_win(tmp_path: Path) -> None:
    config = load_source(
        write_properties(
            tmp_path / "c.properties",
            SOURCE,
            {**SASL, "kafka.linger.ms": "50", "kafka.producer.linger.ms": "7"},
        )
    )
    kafka = config.kafka
    assert kafka.common["security.protocol"] == "SASL_SSL"
    assert isinstance(kafka.common["sasl.password"], Secret)
    assert "s3cr3t-pw" not in repr(config)
    producer = producer_config(kafka, "feed-0")
    assert (producer["sasl.password"], producer["linger.ms"], producer["acks"]) == ("s3cr3t-pw", "7", "all")
    admin = client_settings(kafka, "admin")
    assert (admin["sasl.username"], admin["linger.ms"], admin["bootstrap.servers"]) == (
        "bridge",
        "50",
        "127.0.0.1:9092",
    )
    assert reader_settings(kafka, "lag")["sasl.password"] == "s3cr3t-pw"


def test_relay_consumer_takes_common_then_its_own(tmp_path: Path) -> None:
    [problem_free] = [
        write_properties(tmp_path / "r.properties", RELAY, {**SASL, "kafka.consumer.sasl.username": "relay"})
    ]
    config = load_connector(problem_free, {})
    assert isinstance(config, RelayConnectorConfig)
    settings = consumer_config(config, "relay-0")
    assert (settings["sasl.username"], settings["sasl.password"], settings["enable.auto.commit"]) == (
        "relay",
        "s3cr3t-pw",
        "true",
    )
    assert producer_config(config.kafka, "relay-0")["sasl.username"] == "bridge"


@pytest.mark.parametrize(
    ("key", "why"),
    [
        ("kafka.acks", "acks=all"),
        ("kafka.enable.idempotence", "always idempotent"),
        ("kafka.enable.auto.commit", "committed periodically"),
        ("kafka.group.id", "only a command relay"),
    ],
)
def test_guarantee_keys_stay_refused(tmp_path: Path, key: str, why: str) -> None:
    [problem] = _problems(tmp_path, {key: "1"})
    assert problem.key == key and why in problem.problem


def test_unknown_kafka_property_is_an_unknown_key(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, {"kafka.bootstrap.server": "x:1"})
    assert problem.problem == "unknown key 'kafka.bootstrap.server' (did you mean 'kafka.bootstrap.servers'?)"


def test_a_refused_secret_value_is_never_shown(tmp_path: Path) -> None:
    [problem] = _problems(
        tmp_path, {"kafka.security.protocol": "hunter2-not-a-protocol", "kafka.sasl.password": "hunter2"}
    )
    assert problem.key == "kafka.security.protocol"
    assert "hunter2'" not in str(problem).replace("hunter2-not-a-protocol", "")


def test_tls_files_are_checked_naming_the_key(tmp_path: Path, certs: CertSet) -> None:
    changes = {
        "kafka.security.protocol": "SSL",
        "kafka.ssl.ca.location": str(tmp_path / "missing.pem"),
        "kafka.ssl.certificate.location": str(certs.client_cert("bridge")),
        "kafka.ssl.key.location": str(certs.client_key("device")),
    }
    problems = {p.key: p.problem for p in _problems(tmp_path, changes)}
    assert "does not exist" in problems["kafka.ssl.ca.location"]
    assert "the key does not match the certificate" in problems["kafka.ssl.key.location"]


def test_a_wrong_key_passphrase_is_named_not_shown(tmp_path: Path, certs: CertSet) -> None:
    changes = {
        "kafka.ssl.certificate.location": str(certs.client_cert("bridge")),
        "kafka.ssl.key.location": str(certs.bridge_encrypted_key),
        "kafka.ssl.key.password": "wrong-passphrase",
    }
    [problem] = _problems(tmp_path, changes)
    assert problem.key == "kafka.ssl.key.password" and "does not open" in problem.problem
    assert "wrong-passphrase" not in str(problem)
    ok = {**changes, "kafka.ssl.key.password": certs.key_password}
    assert _problems(tmp_path, ok) == []


def test_command_config(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("from-a-file\n")
    path = tmp_path / "client.properties"
    path.write_text(
        "# as Kafka's tools take it\nsecurity.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n"
        "sasl.username=${env:KUSER}\nsasl.password=${file:pw}\n"
    )
    settings = load_command_config(path, {"KUSER": "tool"})
    assert settings == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "tool",
        "sasl.password": "from-a-file",
    }
    assert isinstance(settings["sasl.password"], Secret)
    assert (
        client_settings(KafkaConnection("k:9092", common=settings), "admin")["sasl.password"] == "from-a-file"
    )


@pytest.mark.parametrize(
    ("text", "key", "words"),
    [
        ("bootstrap.servers=x:1\n", "bootstrap.servers", "--bootstrap"),
        ("acks=1\n", "acks", "acks=all"),
        ("sasl.jaas.config=org.apache...\n", "sasl.jaas.config", "sasl.username"),
        ("no.such.thing=1\n", "no.such.thing", "No such configuration property"),
        ("sasl.password=${env:NOPE}\n", "sasl.password", "NOPE"),
    ],
)
def test_command_config_refusals(tmp_path: Path, text: str, key: str, words: str) -> None:
    path = tmp_path / "client.properties"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_command_config(path, {})
    [problem] = caught.value.problems
    assert problem.key == key and words in str(problem)
