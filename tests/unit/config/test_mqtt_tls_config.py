"""``mqtt.ssl.*``: accepted with an ssl:// or mqtts:// server, refused with tcp://, and the files
checked at load (so by ``validate``), each problem naming its key and never the passphrase."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from mqtt_kafka_sync.config.loader import check_files, load_connector
from mqtt_kafka_sync.config.model import MqttServer, MqttTls, RelayConnectorConfig
from mqtt_kafka_sync.devstack.certs import CertSet
from mqtt_kafka_sync.errors import ConfigProblem
from tests.unit.config.files import RELAY_KEYS, SOURCE_KEYS, load_source, write_properties

BASE = {
    **SOURCE_KEYS,
    "mqtt.server.uri": "ssl://broker.local:8883",
    "routes": "r",
    "routes.r.mqtt.topic": "plants/{plant}/#",
    "routes.r.kafka.topic": "plant-{plant}",
}


def _problems(tmp_path: Path, changes: Mapping[str, str | None]) -> list[ConfigProblem]:
    return check_files([write_properties(tmp_path / "c.properties", BASE, changes)], {})


def _mtls(certs: CertSet, name: str = "bridge") -> dict[str, str]:
    return {
        "mqtt.ssl.ca.location": str(certs.ca),
        "mqtt.ssl.certificate.location": str(certs.client_cert(name)),
        "mqtt.ssl.key.location": str(certs.client_key(name)),
    }


@pytest.mark.parametrize("scheme", ["ssl", "mqtts", "SSL"])
def test_tls_uri_without_keys_uses_the_system_trust_store(tmp_path: Path, scheme: str) -> None:
    path = write_properties(
        tmp_path / "c.properties", BASE, {"mqtt.server.uri": f"{scheme}://broker.local:8883"}
    )
    mqtt = load_source(path).mqtt
    assert mqtt.server == MqttServer(scheme.lower(), "broker.local", 8883)  # type: ignore[arg-type]
    assert mqtt.server.tls
    assert mqtt.tls == MqttTls()


def test_mutual_tls_with_an_encrypted_key(tmp_path: Path, certs: CertSet) -> None:
    changes = {
        **_mtls(certs),
        "mqtt.ssl.key.location": str(certs.bridge_encrypted_key),
        "mqtt.ssl.key.password": "${env:KEY_PASSWORD}",
        "mqtt.ssl.endpoint.identification.algorithm": "none",
        "mqtt.username": "bridge",
    }
    path = write_properties(tmp_path / "c.properties", BASE, changes)
    config = load_connector(path, {"KEY_PASSWORD": certs.key_password})
    tls = config.mqtt.tls
    assert tls is not None
    assert tls.certificate_location == certs.client_cert("bridge")
    assert tls.key_password is not None and tls.key_password.reveal() == certs.key_password
    assert not tls.check_hostname
    assert certs.key_password not in repr(config)


def test_the_relay_takes_the_same_keys(tmp_path: Path, certs: CertSet) -> None:
    relay = {
        **RELAY_KEYS,
        "mqtt.server.uri": "mqtts://broker.local:8883",
        "routes": "c",
        "routes.c.kafka.topic": "commands",
        "routes.c.kafka.key": "{plant}.{device}",
        "routes.c.mqtt.topic": "plants/{plant}/devices/{device}/commands",
        **_mtls(certs),
    }
    config = load_connector(write_properties(tmp_path / "r.properties", relay), {})
    assert isinstance(config, RelayConnectorConfig)
    assert config.mqtt.tls is not None and config.mqtt.tls.key_location == certs.client_key("bridge")


def test_tls_keys_with_a_tcp_uri_are_refused_naming_each_key_and_the_fix(
    tmp_path: Path, certs: CertSet
) -> None:
    problems = _problems(tmp_path, {"mqtt.server.uri": "tcp://broker.local:1883", **_mtls(certs)})
    assert [p.key for p in problems] == list(_mtls(certs))
    assert all("mqtt.server.uri is tcp://" in p.problem for p in problems)
    assert all("ssl://broker.local:8883" in p.fix for p in problems)


@pytest.mark.parametrize(
    ("change", "key", "expected"),
    [
        ({"mqtt.ssl.ca.location": "/nonexistent/ca.pem"}, "mqtt.ssl.ca.location", "does not exist"),
        ({"mqtt.ssl.ca.location": "KEY"}, "mqtt.ssl.ca.location", "holds no PEM certificate"),
        (
            {"mqtt.ssl.certificate.location": "KEY"},
            "mqtt.ssl.certificate.location",
            "holds no PEM certificate",
        ),
        ({"mqtt.ssl.certificate.location": "/nope.pem"}, "mqtt.ssl.certificate.location", "does not exist"),
        ({"mqtt.ssl.key.location": "/nope.key"}, "mqtt.ssl.key.location", "does not exist"),
        ({"mqtt.ssl.key.location": "CERT"}, "mqtt.ssl.key.location", "no PEM private key found"),
        ({"mqtt.ssl.key.location": "OTHER_KEY"}, "mqtt.ssl.key.location", "does not match the certificate"),
        ({"mqtt.ssl.key.location": "ENCRYPTED"}, "mqtt.ssl.key.location", "the key is encrypted"),
        (
            {"mqtt.ssl.key.location": "ENCRYPTED", "mqtt.ssl.key.password": "wrong-secret-xyz"},
            "mqtt.ssl.key.password",
            "the passphrase does not open the key",
        ),
        (
            {"mqtt.ssl.certificate.location": None},
            "mqtt.ssl.key.location",
            "needs mqtt.ssl.certificate.location",
        ),
        (
            {"mqtt.ssl.endpoint.identification.algorithm": "x"},
            "mqtt.ssl.endpoint.identification.algorithm",
            "not",
        ),
    ],
)
def test_unusable_tls_files_are_named_by_their_key(
    tmp_path: Path, certs: CertSet, change: dict[str, str | None], key: str, expected: str
) -> None:
    files = {
        "KEY": str(certs.client_key("bridge")),
        "CERT": str(certs.client_cert("bridge")),
        "OTHER_KEY": str(certs.client_key("device")),
        "ENCRYPTED": str(certs.bridge_encrypted_key),
    }
    changes = {k: files.get(v, v) if v is not None else None for k, v in change.items()}
    problems = _problems(tmp_path, {**_mtls(certs), **changes})
    assert [(p.key, expected in p.problem) for p in problems] == [(key, True)], problems
    assert "wrong-secret-xyz" not in str(problems)


def test_a_certificate_file_holding_its_key_needs_no_key_location(tmp_path: Path, certs: CertSet) -> None:
    both = tmp_path / "both.pem"
    both.write_text(certs.client_cert("bridge").read_text() + certs.client_key("bridge").read_text())
    changes = {"mqtt.ssl.certificate.location": str(both), "mqtt.ssl.key.location": None}
    assert _problems(tmp_path, changes) == []
