"""The files the secured compose stack (docker-compose.secure.yml) mounts: certificates, users and
broker configs. It mounts ``secure/material`` next to it; make that directory once, before
``docker compose ... up``, from the checkout's root::

    python -m mqtt_kafka_sync.devstack.compose_material <the compose dir>/secure/material

It makes the same throwaway material as ``mqtt-kafka-sync stack up --secure`` (:mod:`.certs`,
:class:`~.secure.SecureMaterial`: one CA, the brokers' certificate for ``localhost``, client
certificates, random passwords) and renders what the containers need from it, with the paths they
see (the directory is mounted at :data:`MOUNT` in every container):

    mosquitto.conf            the reference config (brokers/mosquitto/mosquitto.conf) with its plain
                              listener replaced by the TLS one of brokers/mosquitto/tls-listener.conf:
                              require_certificate, password file, the shipped ACL
    passwd                    Mosquitto's password file (users ``bridge`` and ``device-1``)
    acl                       the ACL of the secured local stack, as shipped
    kafka-listener.properties the SASL_SSL listener's settings (SCRAM-SHA-512, inline PEM keystore)
    kafka-scram.args          ``kafka-storage format`` arguments adding the SCRAM users
    bridge-secrets.properties the bridge's passwords, read by the connector files with ``${file:}``

Existing material is kept (Kafka's SCRAM users live in its formatted storage). The files are made
readable by every user, because each image runs as its own user (mosquitto, appuser, sync): this is
development material, never production keys.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path

from mqtt_kafka_sync.devstack.paths import broker_file
from mqtt_kafka_sync.devstack.secure import BRIDGE_USER, SaslSslListener, SecureMaterial
from mqtt_kafka_sync.devstack.secure_mosquitto import password_line

MOUNT = "/secure"
"""Where every container of the secured compose stack sees the material directory."""
MQTTS_PORT = 28883
KAFKA_SASL_PORT = 29094
"""The listeners' ports: those of ``stack up --secure``, so the same connector files work."""

_PLAIN_LISTENER = "listener 11883"
_ANONYMOUS = "allow_anonymous true"


def mosquitto_config(reference: str, tls_listener: str) -> str:
    """``reference`` with its plain listener moved to :data:`MQTTS_PORT` and its anonymous access
    replaced by ``tls_listener``'s settings, filled in with paths under :data:`MOUNT`."""
    block = [line for line in tls_listener.splitlines() if line and not line.startswith("#")]
    settings = "\n".join(block).format(
        cafile=f"{MOUNT}/ca.pem",
        certfile=f"{MOUNT}/server.pem",
        keyfile=f"{MOUNT}/server.key",
        password_file=f"{MOUNT}/passwd",
        acl_file=f"{MOUNT}/acl",
    )
    lines = reference.splitlines()
    for wanted in (_PLAIN_LISTENER, _ANONYMOUS):
        if wanted not in lines:
            raise ValueError(f"brokers/mosquitto/mosquitto.conf lacks the line {wanted!r}")
    replaced = {_PLAIN_LISTENER: f"listener {MQTTS_PORT}", _ANONYMOUS: settings}
    return "\n".join(replaced.get(line, line) for line in lines) + "\n"


def make(root: Path) -> list[Path]:
    """Make (or keep) the material under ``root`` and render the files above; returns them."""
    material = SecureMaterial(root).ensure()
    certs = material.certs
    files = {
        "mosquitto.conf": mosquitto_config(
            broker_file("mosquitto", "mosquitto.conf").read_text(),
            broker_file("mosquitto", "tls-listener.conf").read_text(),
        ),
        "passwd": "".join(f"{password_line(u, p)}\n" for u, p in material.mqtt_users.items()),
        "acl": broker_file("mosquitto", "acl").read_text(),
        "kafka-listener.properties": "".join(
            f"{key}={value}\n"
            for key, value in SaslSslListener(KAFKA_SASL_PORT, material).server_properties().items()
        ),
        "kafka-scram.args": "".join(
            f"{arg}\n" for arg in SaslSslListener(KAFKA_SASL_PORT, material).format_arguments()
        ),
        "bridge-secrets.properties": (
            "# The bridge's secrets, read by connectors/secure/example-*.properties with ${file:}.\n"
            f"mqtt.password={material.mqtt_users[BRIDGE_USER]}\n"
            f"mqtt.ssl.key.password={certs.key_password}\n"
            f"kafka.sasl.password={material.kafka_users[BRIDGE_USER]}\n"
        ),
    }
    written = []
    for name, text in files.items():
        (root / name).write_text(text)
        written.append(root / name)
    os.chmod(root, 0o755)  # noqa: S103 - throwaway dev material, read by each container's own user
    for path in root.iterdir():
        if path.is_file():
            os.chmod(path, 0o644)
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m mqtt_kafka_sync.devstack.compose_material",
        description="Make the certificates, users and broker configs of docker-compose.secure.yml.",
    )
    parser.add_argument(
        "dir", type=Path, help="where: secure/material next to the compose file (mounted at /secure)"
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="delete the directory first: a new CA and new passwords (then also `docker compose "
        "... down -v`: Kafka keeps its SCRAM users in its volume)",
    )
    args = parser.parse_args(argv)
    if args.fresh:
        shutil.rmtree(args.dir, ignore_errors=True)
    for path in make(args.dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
