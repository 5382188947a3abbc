"""A Mosquitto that only speaks mutual TLS with a password and an ACL: the secured stack's MQTT broker.

It is :class:`MosquittoProcess` with the reference config's plain listener moved to a TLS port and
its ``allow_anonymous true`` replaced by ``brokers/mosquitto/tls-listener.conf``; the password file
is written here (Mosquitto 2's PBKDF2-SHA512 format, as ``mosquitto_passwd`` writes it) and the ACL
is ``brokers/mosquitto/acl`` as shipped. Layout under ``root`` as for :class:`MosquittoProcess`, plus
``passwd``. With ``tls=False`` the listener is plain TCP with the same password file and ACL (the
tests of refused logins that need no TLS).
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
from pathlib import Path

from mqtt_kafka_sync.devstack.mosquitto import MosquittoProcess, mqtt5_handshake
from mqtt_kafka_sync.devstack.paths import broker_file
from mqtt_kafka_sync.devstack.ports import LOCALHOST
from mqtt_kafka_sync.devstack.secure import BRIDGE_USER, SecureMaterial, client_tls

DEFAULT_TLS_PORT = 18883
# mosquitto_passwd 2.0: "$7$" = PBKDF2-HMAC-SHA512, 101 iterations, 12-byte salt, base64 fields.
_PBKDF2_ITERATIONS = 101


def password_line(user: str, password: str, salt: bytes | None = None) -> str:
    """One line of a Mosquitto 2 password file."""
    salt = salt or secrets.token_bytes(12)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, _PBKDF2_ITERATIONS)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return f"{user}:$7${_PBKDF2_ITERATIONS}${encoded[0]}${encoded[1]}"


class SecureMosquittoProcess(MosquittoProcess):
    """Mosquitto on ``host:port`` with TLS only: client certificate, password and ACL required."""

    PORT_OPTION = "--mqtts-port"

    def __init__(
        self,
        root: Path,
        material: SecureMaterial,
        *,
        port: int = DEFAULT_TLS_PORT,
        host: str = LOCALHOST,
        tls: bool = True,
    ) -> None:
        super().__init__(root, port=port, host=host)
        self.material = material
        self.tls = tls
        self.password_file = root / "passwd"

    @property
    def uri(self) -> str:
        return f"{'ssl' if self.tls else 'tcp'}://{self.host}:{self.port}"

    def is_ready(self, timeout: float = 2.0) -> bool:
        """True when the bridge user, with its certificate and password, gets a successful CONNACK."""
        login = (BRIDGE_USER, self.material.mqtt_users[BRIDGE_USER])
        tls = client_tls(self.material) if self.tls else None
        return mqtt5_handshake(self.host, self.port, timeout, tls=tls, login=login)

    def launch(self) -> None:
        if not self.is_running():
            self.root.mkdir(parents=True, exist_ok=True)
            users = self.material.ensure().mqtt_users
            lines = [password_line(user, password) for user, password in users.items()]
            self.password_file.write_text("\n".join(lines) + "\n")
            os.chmod(self.password_file, 0o600)
        super().launch()

    def replacements(self) -> dict[str, str]:
        certs = self.material.certs
        tls = broker_file("mosquitto", "tls-listener.conf").read_text()
        tls_only = ("cafile", "certfile", "keyfile", "require_certificate", "use_identity_as_username")
        block = "\n".join(
            line
            for line in tls.splitlines()
            if line and not line.startswith("#") and (self.tls or not line.startswith(tls_only))
        )
        return {
            **super().replacements(),
            "allow_anonymous": block.format(
                cafile=certs.ca,
                certfile=certs.server_cert,
                keyfile=certs.server_key,
                password_file=self.password_file,
                acl_file=broker_file("mosquitto", "acl"),
            ),
        }
