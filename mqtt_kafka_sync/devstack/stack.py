"""The local development stack: one Kafka node and one Mosquitto, no Docker.

``stack up`` runs them detached under ``<repo>/.stack``; tests run their own in a temporary dir on
ports the OS picks (:meth:`LocalStack.ephemeral`) and stop them at teardown. Layout of ``root``::

    stack.json          the ports in use, so `status` and `down` need no options
    kafka/              see mqtt_kafka_sync.devstack.kafka
    mosquitto/          see mqtt_kafka_sync.devstack.mosquitto
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
from mqtt_kafka_sync.errors import StackError

logger = logging.getLogger(__name__)

_PORT_OPTIONS = {
    "kafka_port": "--kafka-port",
    "controller_port": "--controller-port",
    "mqtt_port": "--mqtt-port",
}
_DEFAULT_PORTS = {
    "kafka_port": DEFAULT_PORT,
    "controller_port": DEFAULT_CONTROLLER_PORT,
    "mqtt_port": DEFAULT_MQTT_PORT,
}


def default_root() -> Path:
    return state_dir()


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

    @property
    def healthy(self) -> bool:
        return self.kafka.ready and self.mqtt.ready


class LocalStack:
    """Kafka and Mosquitto under ``root``. A port left as None comes from ``stack.json`` when an
    earlier ``up`` saved one, else the default; a port of 0 is picked by the OS."""

    def __init__(
        self,
        root: Path | None = None,
        *,
        kafka_port: int | None = None,
        controller_port: int | None = None,
        mqtt_port: int | None = None,
        host: str = LOCALHOST,
        libs_dir: Path | None = None,
    ) -> None:
        self.root = (root or default_root()).resolve()
        self.host = host
        asked = {"kafka_port": kafka_port, "controller_port": controller_port, "mqtt_port": mqtt_port}
        self._asked = {key: port for key, port in asked.items() if port}
        ports = {**_DEFAULT_PORTS, **self._saved_ports(), **self._asked}
        picked = iter(free_ports(sum(1 for port in asked.values() if port == 0), host))
        ports.update({key: next(picked) for key, port in asked.items() if port == 0})
        self.ports = ports
        self.kafka = KafkaProcess(
            self.root / "kafka",
            port=ports["kafka_port"],
            controller_port=ports["controller_port"],
            host=host,
            libs_dir=libs_dir,
        )
        self.mosquitto = MosquittoProcess(self.root / "mosquitto", port=ports["mqtt_port"], host=host)

    @classmethod
    def ephemeral(cls, root: Path, *, libs_dir: Path | None = None) -> LocalStack:
        """A stack on free ports chosen by the OS, for tests."""
        return cls(root, kafka_port=0, controller_port=0, mqtt_port=0, libs_dir=libs_dir)

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
        if not self.mosquitto.is_running():
            require_free(self.mosquitto.port, "--mqtt-port", self.host)

    def up(self, timeout: float = 120.0) -> None:
        """Install, start what is not running yet, and wait until both brokers answer."""
        self.check_ports()
        self.root.mkdir(parents=True, exist_ok=True)
        self.install()
        started: list[KafkaProcess | MosquittoProcess] = []
        try:
            for component in (self.kafka, self.mosquitto):
                if not component.is_running():
                    component.launch()
                    started.append(component)
            (self.root / "stack.json").write_text(json.dumps(self.ports, indent=2) + "\n")
            self.kafka.wait_ready(timeout)
            self.mosquitto.wait_ready(timeout)
        except BaseException:
            for component in started:
                component.stop()
            raise

    def down(self) -> None:
        """Stop both brokers (SIGTERM, then SIGKILL after a grace period); their data stays."""
        self.mosquitto.stop()
        self.kafka.stop()

    def status(self) -> StackStatus:
        kafka_pid, mqtt_pid = self.kafka.process.pid, self.mosquitto.process.pid
        return StackStatus(
            root=self.root,
            kafka=ComponentStatus(
                "kafka", self.kafka_bootstrap, kafka_pid, kafka_pid is not None and self.kafka.is_ready(1.0)
            ),
            mqtt=ComponentStatus(
                "mosquitto", self.mqtt_uri, mqtt_pid, mqtt_pid is not None and self.mosquitto.is_ready(1.0)
            ),
        )

    def _saved_ports(self) -> dict[str, int]:
        try:
            saved = json.loads((self.root / "stack.json").read_text())
        except (OSError, ValueError):
            return {}
        return {key: int(saved[key]) for key in _DEFAULT_PORTS if isinstance(saved.get(key), int)}

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
