"""Eclipse Mosquitto for the local stack, from Debian's package, configured from the reference file.

Layout under ``root``: ``mosquitto.conf`` (rendered from ``brokers/mosquitto/mosquitto.conf`` with
our port, data dir and log file), ``data/`` (persistence), ``mosquitto.log``, ``mosquitto.out`` and
``mosquitto.pid``.
"""

from __future__ import annotations

import logging
import os
import pwd
import shutil
import socket
import ssl
import subprocess
from pathlib import Path

from mqtt_kafka_sync.devstack.paths import broker_file
from mqtt_kafka_sync.devstack.ports import LOCALHOST, require_free
from mqtt_kafka_sync.devstack.process import BrokerProcess, ManagedBroker
from mqtt_kafka_sync.errors import StackError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 11883
APT_PACKAGES = ("mosquitto", "mosquitto-clients")
# Debian installs the broker in /usr/sbin, which is not on every user's PATH.
_SEARCH_PATH = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/usr/local/sbin"])


class ManagedMqttBroker(ManagedBroker):
    """A local MQTT broker: ready when it answers an MQTT 5 CONNECT with a successful CONNACK."""

    host: str
    port: int

    @property
    def uri(self) -> str:
        return f"tcp://{self.host}:{self.port}"

    @property
    def ready_what(self) -> str:
        return f"MQTT CONNACK from {self.uri}"

    def is_ready(self, timeout: float = 2.0) -> bool:
        return mqtt5_handshake(self.host, self.port, timeout)


class MosquittoProcess(ManagedMqttBroker):
    """One Mosquitto broker listening on ``host:port`` (MQTT 3.1, 3.1.1 and 5, anonymous).

    :meth:`stop` lets Mosquitto write its persistence file (SIGTERM); after :meth:`kill` whatever
    arrived since the last autosave is lost.
    """

    READY_TIMEOUT = 20.0
    STOP_TIMEOUT = 15.0
    PORT_OPTION = "--mqtt-port"

    def __init__(self, root: Path, *, port: int = DEFAULT_PORT, host: str = LOCALHOST) -> None:
        self.root = root
        self.host = host
        self.port = port
        self.config_file = root / "mosquitto.conf"
        self.data_dir = root / "data"
        self.log_file = root / "mosquitto.log"
        self.process = BrokerProcess.under(
            root,
            "mosquitto",
            marker=str(self.config_file),
            logs=[self.log_file],
        )

    def install(self) -> str:
        """The path of the ``mosquitto`` binary, installing Debian's package when we can."""
        found = shutil.which("mosquitto", path=_SEARCH_PATH)
        if found:
            return found
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            raise StackError(
                "`mosquitto` not found: install it (Debian/Ubuntu: sudo apt-get install -y "
                "mosquitto mosquitto-clients; macOS: brew install mosquitto)"
            )
        logger.info("installing %s with apt-get", " ".join(APT_PACKAGES))
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (
            ["apt-get", "-o", "DPkg::Lock::Timeout=120", "update", "-q"],
            ["apt-get", "-o", "DPkg::Lock::Timeout=120", "install", "-y", "-q", *APT_PACKAGES],
        ):
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900, check=False)
            if done.returncode != 0:
                last = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
                raise StackError(f"`{' '.join(argv)}` failed; is Debian's package archive reachable?\n{last}")
        found = shutil.which("mosquitto", path=_SEARCH_PATH)
        if not found:
            raise StackError("apt-get installed mosquitto, yet no `mosquitto` is on PATH or in /usr/sbin")
        return found

    def launch(self) -> None:
        if self.is_running():
            return
        require_free(self.port, self.PORT_OPTION, self.host)
        binary = self.install()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        reference = broker_file("mosquitto", "mosquitto.conf").read_text()
        self.config_file.write_text(self.render_config(reference))
        self.process.spawn([binary, "-c", str(self.config_file)], cwd=self.root)

    def replacements(self) -> dict[str, str]:
        """The first line of each key in the reference config, and what replaces it."""
        return {
            "listener": f"listener {self.port} {self.host}",
            "persistence_location": f"persistence_location {self.data_dir}/",
            "log_dest": f"log_dest file {self.log_file}",
        }

    def render_config(self, reference: str) -> str:
        """The reference config with our listener, data dir, log file and user swapped in."""
        replacements = self.replacements()
        seen: set[str] = set()
        lines = []
        for line in reference.splitlines():
            key = line.split(maxsplit=1)[0] if line.strip() and not line.lstrip().startswith("#") else ""
            if key in replacements and key not in seen:
                seen.add(key)
                lines.append(replacements[key])
            elif key != "user":
                lines.append(line)
        missing = sorted(set(replacements) - seen)
        if missing:
            raise StackError(f"brokers/mosquitto/mosquitto.conf lacks {', '.join(missing)}: cannot render it")
        # Run as ourselves: as root Mosquitto would switch to user `mosquitto`, which cannot write a
        # data dir inside a private (0700) temporary directory.
        lines.append(f"user {pwd.getpwuid(os.geteuid()).pw_name}")
        return "\n".join(lines) + "\n"


def mqtt5_handshake(
    host: str,
    port: int,
    timeout: float = 2.0,
    *,
    tls: ssl.SSLContext | None = None,
    login: tuple[str, str] | None = None,
) -> bool:
    """Send an MQTT 5 CONNECT (clean start, no session) and check for CONNACK reason code 0.

    With ``tls`` the connection is wrapped first (a refused client certificate reads as not ready);
    ``login`` is a user name and password.
    """
    client_id = b"mqtt-kafka-sync-devstack-probe"
    flags = 0x02 | (0xC0 if login else 0)
    variable = b"\x00\x04MQTT" + bytes([5, flags]) + (10).to_bytes(2, "big") + b"\x00"
    payload = b"".join(len(field).to_bytes(2, "big") + field for field in _connect_fields(client_id, login))
    body = variable + payload
    if len(body) > 127:
        raise ValueError("probe CONNECT too long for a one-byte remaining length")
    connect = bytes([0x10, len(body)]) + body
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            _wrap(raw, tls, host) as sock,
            sock.makefile("rb") as reply,
        ):
            sock.sendall(connect)
            if reply.read(1) != b"\x20":  # CONNACK
                return False
            while reply.read(1)[:1] >= b"\x80":  # skip the variable-length "remaining length"
                pass
            _flags, reason = reply.read(2)
            if reason == 0:
                sock.sendall(b"\xe0\x00")  # DISCONNECT, normal
            return reason == 0
    except (OSError, ValueError):  # ssl.SSLError is an OSError
        return False


def _connect_fields(client_id: bytes, login: tuple[str, str] | None) -> list[bytes]:
    return [client_id, *(part.encode() for part in login)] if login else [client_id]


def _wrap(sock: socket.socket, tls: ssl.SSLContext | None, host: str) -> socket.socket:
    return tls.wrap_socket(sock, server_hostname=host) if tls is not None else sock
