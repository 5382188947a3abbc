"""What the secured local stack's brokers and clients share: certificates, users, passwords.

One directory (``<stack dir>/secure``) holds the certificates of :mod:`.certs` and ``users.json``,
the random passwords of the MQTT users (``bridge``, ``device-1``) and of the Kafka SCRAM user
(``bridge``). They are made once and kept: Kafka's SCRAM users are written into its storage when it
is formatted, so the passwords must outlive a restart. :class:`SaslSslListener` is the extra Kafka
listener (SASL_SSL, SCRAM-SHA-512, inline PEM keystore per KIP-651); :func:`write_kafka_properties` writes
the librdkafka settings a client needs for it.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka.admin import AdminClient

from mqtt_kafka_sync.devstack.certs import BRIDGE_CN, DEVICE_CN, CertSet, ensure_certs
from mqtt_kafka_sync.devstack.mosquitto import mqtt5_handshake

SCRAM_MECHANISM = "SCRAM-SHA-512"
LISTENER = "SASL_SSL"
BRIDGE_USER = BRIDGE_CN
DEVICE_USER = DEVICE_CN


@dataclass(frozen=True)
class SecureMaterial:
    """Certificates and passwords under ``root``: :meth:`ensure` makes them, the rest reads them."""

    root: Path

    @property
    def certs(self) -> CertSet:
        return CertSet(self.root)

    @property
    def users_file(self) -> Path:
        return self.root / "users.json"

    def ensure(self) -> SecureMaterial:
        """Make what is missing (certificates, random passwords); keep what exists."""
        ensure_certs(self.root)
        if not self.users_file.is_file():
            users = {
                "mqtt": {name: secrets.token_urlsafe(16) for name in (BRIDGE_USER, DEVICE_USER)},
                "kafka": {BRIDGE_USER: secrets.token_urlsafe(16)},
            }
            self.users_file.write_text(json.dumps(users, indent=2) + "\n")
            os.chmod(self.users_file, 0o600)
        return self

    @property
    def mqtt_users(self) -> dict[str, str]:
        """MQTT user name -> password (Mosquitto's password file)."""
        return self._users("mqtt")

    @property
    def kafka_users(self) -> dict[str, str]:
        """Kafka SCRAM-SHA-512 user name -> password."""
        return self._users("kafka")

    def _users(self, system: str) -> dict[str, str]:
        return {
            str(name): str(password)
            for name, password in json.loads(self.users_file.read_text())[system].items()
        }


@dataclass(frozen=True)
class SaslSslListener:
    """Kafka's extra listener: TLS with the server certificate, then SCRAM-SHA-512 logins."""

    port: int
    material: SecureMaterial

    def server_properties(self) -> dict[str, str]:
        """Listener-scoped broker settings (``listeners`` and the protocol map are the caller's)."""
        prefix = f"listener.name.{LISTENER.lower()}."
        certs = self.material.ensure().certs
        return {
            f"{prefix}sasl.enabled.mechanisms": SCRAM_MECHANISM,
            # SCRAM needs a JAAS login module on the broker even when no broker logs in with it.
            f"{prefix}{SCRAM_MECHANISM.lower()}.sasl.jaas.config": (
                "org.apache.kafka.common.security.scram.ScramLoginModule required;"
            ),
            # KIP-651 PEM keystore given inline: Kafka wants a key password for a PEM keystore
            # *file*, and Java 17 cannot decrypt the PBES2 keys OpenSSL and cryptography write.
            f"{prefix}ssl.keystore.type": "PEM",
            f"{prefix}ssl.keystore.key": _one_line(certs.server_key.read_text()),
            f"{prefix}ssl.keystore.certificate.chain": _one_line(certs.server_cert.read_text()),
        }

    def format_arguments(self) -> list[str]:
        """``kafka-storage format`` arguments that add the SCRAM users to the new cluster's metadata."""
        arguments = []
        for name, password in self.material.ensure().kafka_users.items():
            arguments += ["--add-scram", f"{SCRAM_MECHANISM}=[name={name},password={password}]"]
        return arguments


def _one_line(pem: str) -> str:
    """A PEM block as one ``.properties`` value: Java's Properties turns ``\\n`` back into newlines."""
    return pem.strip().replace("\n", "\\n")


def client_tls(material: SecureMaterial, name: str = "bridge") -> ssl.SSLContext:
    """A TLS context trusting our CA and presenting client certificate ``name`` (``bridge``, ``device``)."""
    context = ssl.create_default_context(cafile=str(material.certs.ca))
    context.load_cert_chain(material.certs.client_cert(name), material.certs.client_key(name))
    return context


def kafka_client_settings(
    bootstrap: str, material: SecureMaterial, user: str = BRIDGE_USER
) -> dict[str, str]:
    """librdkafka settings for ``user`` on the SASL_SSL listener at ``bootstrap``."""
    return {
        "bootstrap.servers": bootstrap,
        "security.protocol": LISTENER,
        "sasl.mechanism": SCRAM_MECHANISM,
        "sasl.username": user,
        "sasl.password": material.kafka_users[user],
        "ssl.ca.location": str(material.certs.ca),
    }


@dataclass(frozen=True)
class SecureEndpoints:
    """Where a client finds the secured brokers, and what it needs to log in."""

    kafka_bootstrap: str
    mqtt_uri: str
    material: SecureMaterial

    def kafka_settings(self, user: str = BRIDGE_USER) -> dict[str, str]:
        return kafka_client_settings(self.kafka_bootstrap, self.material, user)

    def write_kafka_properties(self, path: Path, user: str = BRIDGE_USER) -> Path:
        """librdkafka settings for ``user`` as a ``.properties`` file at ``path``."""
        return write_kafka_properties(path, self.kafka_settings(user))

    @property
    def mqtt_address(self) -> tuple[str, int]:
        parts = urlsplit(self.mqtt_uri)
        return parts.hostname or "127.0.0.1", parts.port or 8883

    def is_ready(self, timeout: float = 2.0) -> bool:
        """True when the bridge user logs in to both: SCRAM over TLS, and MQTT over mutual TLS."""
        config: dict[str, Any] = {**self.kafka_settings(), "logger": logging.getLogger(__name__)}
        try:
            if not AdminClient(config).list_topics(timeout=timeout).brokers:
                return False
        except Exception:  # noqa: BLE001 - KafkaException or a timeout: not ready yet
            return False
        login = (BRIDGE_USER, self.material.mqtt_users[BRIDGE_USER])
        host, port = self.mqtt_address
        return mqtt5_handshake(host, port, timeout, tls=client_tls(self.material), login=login)


def write_kafka_properties(path: Path, settings: dict[str, str]) -> Path:
    """``settings`` as a ``.properties`` file (owner-only: it holds a password)."""
    lines = ["# librdkafka settings for the secured local stack's SASL_SSL listener"]
    lines += [f"{key}={value}" for key, value in settings.items()]
    path.write_text("\n".join(lines) + "\n")
    os.chmod(path, 0o600)
    return path
