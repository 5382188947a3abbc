"""The local development stack: one Kafka node and one Mosquitto, no Docker.

``stack up`` runs them detached under ``<repo>/.stack``; tests run their own in a temporary dir on
ports the OS picks (:meth:`LocalStack.ephemeral`) and stop them at teardown. Layout of ``root``::

    stack.json          the ports in use, so `status` and `down` need no options
    kafka/              see mqtt_kafka_sync.devstack.kafka
    mosquitto/          see mqtt_kafka_sync.devstack.mosquitto

A *secure* stack (``secure=True``; ``stack up --secure`` runs one under ``<state dir>/secure`` on
other default ports) adds, for the TLS and SASL work, Kafka's SASL_SSL listener and a TLS-only
Mosquitto, with its certificates, passwords and client properties::

    secure/             see mqtt_kafka_sync.devstack.secure (certs, users.json, bridge-kafka.properties)
    mosquitto-tls/      see mqtt_kafka_sync.devstack.secure_mosquitto
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

from mqtt_kafka_sync.devstack.kafka import DEFAULT_CONTROLLER_PORT, DEFAULT_PORT, KafkaProcess
from mqtt_kafka_sync.devstack.mosquitto import DEFAULT_PORT as DEFAULT_MQTT_PORT
from mqtt_kafka_sync.devstack.mosquitto import MosquittoProcess
from mqtt_kafka_sync.devstack.paths import state_dir
from mqtt_kafka_sync.devstack.ports import LOCALHOST, free_ports, require_free
from mqtt_kafka_sync.devstack.process import ManagedBroker
from mqtt_kafka_sync.devstack.secure import SaslSslListener, SecureEndpoints, SecureMaterial
from mqtt_kafka_sync.devstack.secure_mosquitto import SecureMosquittoProcess
from mqtt_kafka_sync.errors import StackError

logger = logging.getLogger(__name__)

_PORT_OPTIONS = {
    "kafka_port": "--kafka-port",
    "controller_port": "--controller-port",
    "mqtt_port": "--mqtt-port",
    "kafka_sasl_port": "--kafka-sasl-port",
    "mqtts_port": "--mqtts-port",
}
_DEFAULT_PORTS = {
    "kafka_port": DEFAULT_PORT,
    "controller_port": DEFAULT_CONTROLLER_PORT,
    "mqtt_port": DEFAULT_MQTT_PORT,
}
# A secure stack may run beside the plain one: other ports.
_SECURE_DEFAULT_PORTS = {
    "kafka_port": 29092,
    "controller_port": 29093,
    "mqtt_port": 21883,
    "kafka_sasl_port": 29094,
    "mqtts_port": 28883,
}
SECURE_PROPERTIES = "bridge-kafka.properties"


def default_root() -> Path:
    return state_dir()


def default_secure_root() -> Path:
    """Where ``stack up --secure`` runs (its Kafka jars are the plain stack's, see :func:`shared_libs`)."""
    return state_dir() / "secure-stack"


def shared_libs() -> Path:
    """The Kafka jars of the default stack, which every other stack reuses."""
    return default_root() / "kafka" / "libs"


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    endpoint: str
    pid: int | None
    ready: bool

    def __str__(self) -> str:
        if self.pid is None:
            return f"{self.name:<10} stopped"
        state = "ready" if self.ready else "NOT answering"
        return f"{self.name:<10} running (pid {self.pid}), {state} at {self.endpoint}"


@dataclass(frozen=True)
class StackStatus:
    root: Path
    kafka: ComponentStatus
    mqtt: ComponentStatus
    secure_mqtt: ComponentStatus | None = None

    @property
    def components(self) -> list[ComponentStatus]:
        return [self.kafka, self.mqtt, *([self.secure_mqtt] if self.secure_mqtt else [])]

    @property
    def healthy(self) -> bool:
        return all(component.ready for component in self.components)


class LocalStack:
    """Kafka and Mosquitto under ``root``. A port left as None comes from ``stack.json`` when an
    earlier ``up`` saved one, else the default; a port of 0 is picked by the OS. ``secure`` adds
    Kafka's SASL_SSL listener and a TLS-only Mosquitto (:attr:`secure_endpoints`)."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        kafka_port: int | None = None,
        controller_port: int | None = None,
        mqtt_port: int | None = None,
        host: str = LOCALHOST,
        libs_dir: Path | None = None,
        secure: bool = False,
        kafka_sasl_port: int | None = None,
        mqtts_port: int | None = None,
    ) -> None:
        self.root = (root or default_root()).resolve()
        self.host = host
        asked = {"kafka_port": kafka_port, "controller_port": controller_port, "mqtt_port": mqtt_port}
        if secure:
            asked |= {"kafka_sasl_port": kafka_sasl_port, "mqtts_port": mqtts_port}
        self._defaults = _SECURE_DEFAULT_PORTS if secure else _DEFAULT_PORTS
        self._asked = {key: port for key, port in asked.items() if port}
        ports = {**self._defaults, **self._saved_ports(), **self._asked}
        picked = iter(free_ports(sum(1 for port in asked.values() if port == 0), host))
        ports.update({key: next(picked) for key, port in asked.items() if port == 0})
        self.ports = ports
        self.material = SecureMaterial(self.root / "secure") if secure else None
        self.kafka = KafkaProcess(
            self.root / "kafka",
            port=ports["kafka_port"],
            controller_port=ports["controller_port"],
            host=host,
            libs_dir=libs_dir,
            sasl_ssl=SaslSslListener(ports["kafka_sasl_port"], self.material) if self.material else None,
        )
        self.mosquitto = MosquittoProcess(self.root / "mosquitto", port=ports["mqtt_port"], host=host)
        self.secure_mosquitto = (
            SecureMosquittoProcess(
                self.root / "mosquitto-tls", self.material, port=ports["mqtts_port"], host=host
            )
            if self.material
            else None
        )

    @classmethod
    def ephemeral(cls, root: Path, *, libs_dir: Path | None = None, secure: bool = False) -> LocalStack:
        """A stack on free ports chosen by the OS, for tests."""
        return cls(
            root,
            kafka_port=0,
            controller_port=0,
            mqtt_port=0,
            libs_dir=libs_dir,
            secure=secure,
            kafka_sasl_port=0,
            mqtts_port=0,
        )

    @property
    def components(self) -> list[ManagedBroker]:
        """The brokers in start order."""
        return [self.kafka, self.mosquitto, *([self.secure_mosquitto] if self.secure_mosquitto else [])]

    @property
    def secure_endpoints(self) -> SecureEndpoints:
        """The SASL_SSL bootstrap, the TLS MQTT URI and the certificates and passwords (secure only)."""
        if self.material is None or self.secure_mosquitto is None:
            raise StackError(f"the stack in {self.root} is not a secure one")
        return SecureEndpoints(self.kafka.sasl_ssl_bootstrap, self.secure_mosquitto.uri, self.material)

    @property
    def kafka_properties(self) -> Path:
        """The bridge's librdkafka settings for the SASL_SSL listener, written by :meth:`up`."""
        return self.root / "secure" / SECURE_PROPERTIES

    @property
    def kafka_bootstrap(self) -> str:
        return self.kafka.bootstrap

    @property
    def mqtt_uri(self) -> str:
        return self.mosquitto.uri

    @property
    def mqtt_host(self) -> str:
        return self.mosquitto.host

    @property
    def mqtt_port(self) -> int:
        return self.mosquitto.port

    def install(self) -> None:
        """Fetch what is missing (Kafka jars via mvn, Mosquitto via apt-get); no-op when present."""
        self.kafka.install()
        self.mosquitto.install()

    def check_ports(self) -> None:
        """Raise StackError when a broker that is not running yet would find its port taken."""
        self._refuse_port_change()
        if not self.kafka.is_running():
            require_free(self.kafka.port, "--kafka-port", self.host)
            require_free(self.kafka.controller_port, "--controller-port", self.host)
            if self.kafka.sasl_ssl is not None:
                require_free(self.kafka.sasl_ssl.port, "--kafka-sasl-port", self.host)
        for mqtt in (self.mosquitto, self.secure_mosquitto):
            if mqtt is not None and not mqtt.is_running():
                require_free(mqtt.port, mqtt.PORT_OPTION, self.host)

    def up(self, timeout: float = 120.0) -> None:
        """Install, start what is not running yet, and wait until every broker answers."""
        self.check_ports()
        self.root.mkdir(parents=True, exist_ok=True)
        self.install()
        if self.material is not None:
            self.material.ensure()
            self.secure_endpoints.write_kafka_properties(self.kafka_properties)
        started: list[ManagedBroker] = []
        try:
            for component in self.components:
                if not component.is_running():
                    component.launch()
                    started.append(component)
            (self.root / "stack.json").write_text(json.dumps(self.ports, indent=2) + "\n")
            for component in self.components:
                component.wait_ready(timeout)
        except BaseException:
            for component in started:
                component.stop()
            raise

    def down(self) -> None:
        """Stop the brokers (SIGTERM, then SIGKILL after a grace period); their data stays."""
        for component in reversed(self.components):
            component.stop()

    def status(self) -> StackStatus:
        secure = self.secure_mosquitto
        return StackStatus(
            root=self.root,
            kafka=_status("kafka", self.kafka_bootstrap, self.kafka),
            mqtt=_status("mosquitto", self.mqtt_uri, self.mosquitto),
            secure_mqtt=_status("mqtt-tls", secure.uri, secure) if secure else None,
        )

    def _saved_ports(self) -> dict[str, int]:
        try:
            saved = json.loads((self.root / "stack.json").read_text())
        except (OSError, ValueError):
            return {}
        return {key: int(saved[key]) for key in self._defaults if isinstance(saved.get(key), int)}

    def _refuse_port_change(self) -> None:
        if not (self.kafka.is_running() or self.mosquitto.is_running()):
            return
        saved = self._saved_ports()
        for key, port in self._asked.items():
            if key in saved and saved[key] != port:
                raise StackError(
                    f"the stack in {self.root} is already running with {_PORT_OPTIONS[key]} {saved[key]}; "
                    "run `mqtt-kafka-sync stack down` first or leave the option out"
                )


def _status(name: str, endpoint: str, broker: ManagedBroker) -> ComponentStatus:
    pid = broker.process.pid
    return ComponentStatus(name, endpoint, pid, pid is not None and broker.is_ready(1.0))
