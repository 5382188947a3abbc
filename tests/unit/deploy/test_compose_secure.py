"""compose/docker-compose.secure.yml, its files under compose/secure/ and the examples in
connectors/secure/, checked without Docker (CI has none): the compose
file parses and mounts what exists, the material script renders a TLS-only Mosquitto and a SASL_SSL
Kafka listener, and the example connectors validate against that material without showing a secret.
"""

from __future__ import annotations

import dataclasses
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mqtt_kafka_sync.cli.main import main
from mqtt_kafka_sync.config.loader import load_connector
from mqtt_kafka_sync.devstack import compose_material
from mqtt_kafka_sync.devstack.compose_material import KAFKA_SASL_PORT, MOUNT, MQTTS_PORT

REPO = Path(__file__).resolve().parents[3]
COMPOSE_DIR = REPO / "compose"
SECURE_EXAMPLE = REPO / "connectors" / "secure" / "example-telemetry.properties"
SECURE_EXAMPLES = {  # each secured example and the plain example it secures
    SECURE_EXAMPLE: REPO / "connectors" / "example-telemetry.properties",
    REPO / "connectors" / "secure" / "example-commands.properties": REPO
    / "connectors"
    / "example-commands.json",
}


def _load_yaml(path: Path) -> dict[str, Any]:
    """``path`` parsed by PyYAML (a dev dependency), as Docker Compose reads it."""
    loaded: Any = yaml.safe_load(path.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("compose") / "material"
    assert compose_material.main([str(root)]) == 0
    return root


def test_the_compose_file_parses_and_mounts_files_that_exist() -> None:
    services = _load_yaml(COMPOSE_DIR / "docker-compose.secure.yml")["services"]
    assert set(services) == {"kafka", "mosquitto", "worker"}
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source, target = volume.split(":")[:2]
            if source.startswith("."):
                made = source == "./secure/material"  # by compose_material, before `up`
                assert made or (COMPOSE_DIR / source).exists(), f"{name}: {source} does not exist"
                assert not made or target == MOUNT
    published = {port.split(":")[-1] for port in services["kafka"]["ports"]}
    assert {str(MQTTS_PORT), str(KAFKA_SASL_PORT)} <= published
    assert services["mosquitto"]["command"] == ["mosquitto", "-c", f"{MOUNT}/mosquitto.conf"]
    connector = services["worker"]["command"][1]
    assert connector == f"/connectors/secure/{SECURE_EXAMPLE.name}"


def test_kafka_listens_on_sasl_ssl_and_its_start_script_parses() -> None:
    properties = dict(
        line.split("=", 1)
        for line in (COMPOSE_DIR / "secure" / "kafka-server.properties").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert f"SASL_SSL://localhost:{KAFKA_SASL_PORT}" in properties["advertised.listeners"].split(",")
    assert "SASL_SSL:SASL_SSL" in properties["listener.security.protocol.map"].split(",")
    script = COMPOSE_DIR / "secure" / "kafka-start.sh"
    assert subprocess.run(["bash", "-n", str(script)], check=False).returncode == 0


def test_the_material_is_a_tls_only_mosquitto_and_a_scram_listener(material: Path) -> None:
    conf = (material / "mosquitto.conf").read_text().splitlines()
    assert f"listener {MQTTS_PORT}" in conf and "require_certificate true" in conf
    assert "allow_anonymous false" in conf and "allow_anonymous true" not in conf
    assert not any(line.startswith("listener ") and line != f"listener {MQTTS_PORT}" for line in conf)
    for line in conf:  # every file the broker reads is in the material, at the container's path
        key, _, value = line.partition(" ")
        if key in ("cafile", "certfile", "keyfile", "password_file", "acl_file"):
            assert value.startswith(f"{MOUNT}/") and (material / value.removeprefix(f"{MOUNT}/")).is_file()
    listener = (material / "kafka-listener.properties").read_text()
    assert "listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512\n" in listener
    assert (material / "kafka-scram.args").read_text().startswith("--add-scram\nSCRAM-SHA-512=[name=bridge,")
    for path in material.iterdir():  # each image runs as its own user
        assert stat.S_IMODE(path.stat().st_mode) & 0o004, path


@pytest.mark.parametrize("example", SECURE_EXAMPLES, ids=lambda path: path.stem)
def test_the_secure_example_connectors_validate_and_show_no_secret(
    example: Path, material: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    connector = tmp_path / example.name
    connector.write_text(example.read_text().replace(f"{MOUNT}/", f"{material}/"))
    assert main(["validate", str(connector)]) == 0
    shown = "".join(capsys.readouterr())
    secrets = (material / "bridge-secrets.properties").read_text().splitlines()
    for value in (line.split("=", 1)[1] for line in secrets if not line.startswith("#")):
        assert value not in shown
    secure = load_connector(connector, {})
    plain = load_connector(SECURE_EXAMPLES[example], {})
    assert secure.mqtt.tls is not None and secure.kafka.common["security.protocol"] == "SASL_SSL"
    assert isinstance(secure, type(plain))  # the same connector but for how it reaches the brokers
    unsecured = dataclasses.replace(secure, source="", mqtt=plain.mqtt, kafka=plain.kafka)
    assert unsecured == dataclasses.replace(plain, source="")
