"""``kafka/settings.py``: the layers of one client's librdkafka settings, lowest first:
``bootstrap.servers``, the client's defaults, ``kafka.<p>``, ``kafka.producer.<p>`` /
``kafka.consumer.<p>`` for its kind; an assign-only reader never commits, whatever is set below it."""

from __future__ import annotations

import pytest

from mqtt_kafka_sync.config.model import KafkaConnection
from mqtt_kafka_sync.kafka.settings import Role, client_settings, connection, reader_settings
from mqtt_kafka_sync.secret import Secret

KAFKA = KafkaConnection(
    "broker:9094",
    producer_overrides={"linger.ms": "7", "client.id": "own-producer"},
    consumer_overrides={"fetch.wait.max.ms": "9", "sasl.username": "relay"},
    common={
        "security.protocol": "SASL_SSL",
        "sasl.username": "bridge",
        "sasl.password": Secret("pw-1234"),
        "linger.ms": "50",
        "fetch.wait.max.ms": "50",
    },
)


@pytest.mark.parametrize(
    ("role", "linger", "fetch_wait", "user"),
    [
        ("producer", "7", "50", "bridge"),
        ("consumer", "50", "9", "relay"),
        ("admin", "50", "50", "bridge"),  # neither kind's own keys
    ],
)
def test_each_role_takes_common_then_its_own(role: Role, linger: str, fetch_wait: str, user: str) -> None:
    settings = client_settings(KAFKA, role)
    assert settings["bootstrap.servers"] == "broker:9094"
    assert (settings["linger.ms"], settings["fetch.wait.max.ms"], settings["sasl.username"]) == (
        linger,
        fetch_wait,
        user,
    )
    assert settings["security.protocol"] == "SASL_SSL"


def test_defaults_are_below_the_connection_and_bootstrap_below_everything() -> None:
    settings = client_settings(
        KAFKA, "producer", {"linger.ms": "1", "acks": "all", "bootstrap.servers": "x:1"}
    )
    assert (settings["linger.ms"], settings["acks"], settings["bootstrap.servers"]) == ("7", "all", "x:1")
    assert client_settings(KAFKA, "admin", {"linger.ms": "1"})["linger.ms"] == "50"


def test_secrets_are_revealed_for_librdkafka_only_in_the_settings() -> None:
    settings = client_settings(KAFKA, "admin")
    shown = settings["sasl.password"]
    assert shown == "pw-1234" and type(shown) is str  # confluent-kafka reads str(): not masked
    assert "pw-1234" not in repr(KAFKA) and "pw-1234" not in str(KAFKA)


def test_a_reader_has_a_group_of_its_own_and_never_commits() -> None:
    common = {**KAFKA.common, "enable.auto.commit": "true", "enable.auto.offset.store": "true"}
    kafka = KafkaConnection("broker:9094", common=common)
    first, second = reader_settings(kafka, "tail"), reader_settings(kafka, "tail", {"group.id": "mine"})
    assert first["enable.auto.commit"] is False and first["enable.auto.offset.store"] is False
    assert str(first["group.id"]).startswith("mqtt-kafka-sync-tail-")
    assert first["group.id"] != reader_settings(kafka, "tail")["group.id"]
    assert second["group.id"] == "mine" and second["sasl.password"] == "pw-1234"


def test_a_bare_address_is_a_connection_without_pass_through() -> None:
    assert connection("k:1") == KafkaConnection("k:1")
    assert connection(KAFKA) is KAFKA
    assert client_settings("k:1", "consumer", {"a": "b"}) == {"bootstrap.servers": "k:1", "a": "b"}
