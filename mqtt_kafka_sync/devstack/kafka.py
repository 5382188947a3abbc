"""A single-node Apache Kafka (KRaft, broker and controller in one JVM) run from Maven Central jars.

Layout under ``root``: ``server.properties``, ``data/`` (formatted once), ``logs/server.log``
(log4j2, WARN and up), ``kafka.out`` (the JVM's own output) and ``kafka.pid``. The jars live in
``libs_dir`` (default ``root/libs``, see :mod:`mqtt_kafka_sync.devstack.jars`), shareable between
stacks.
"""

from __future__ import annotations

import base64
import logging
import subprocess
import uuid
from pathlib import Path
from typing import Any

from confluent_kafka.admin import AdminClient

from mqtt_kafka_sync.devstack.jars import JAVA_HINT, install_jars, jars_dir, jars_installed, require_binary
from mqtt_kafka_sync.devstack.paths import broker_file
from mqtt_kafka_sync.devstack.ports import LOCALHOST, accepts, require_free
from mqtt_kafka_sync.devstack.process import BrokerProcess, ManagedBroker
from mqtt_kafka_sync.devstack.secure import LISTENER as SASL_SSL
from mqtt_kafka_sync.devstack.secure import SaslSslListener
from mqtt_kafka_sync.errors import StackError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 19092
DEFAULT_CONTROLLER_PORT = 19093
JVM_OPTIONS = (
    "-Xmx512m",
    "-Xms256m",
    "-XX:+UseG1GC",
    "-XX:MaxGCPauseMillis=20",
    "-XX:+ExitOnOutOfMemoryError",
    "-Djava.awt.headless=true",
)


class KafkaProcess(ManagedBroker):
    """One KRaft-combined Kafka node on ``host:port`` (controller on ``controller_port``)."""

    READY_TIMEOUT = 90.0
    STOP_TIMEOUT = 30.0

    def __init__(
        self,
        root: Path,
        *,
        port: int = DEFAULT_PORT,
        controller_port: int = DEFAULT_CONTROLLER_PORT,
        host: str = LOCALHOST,
        libs_dir: Path | None = None,
        sasl_ssl: SaslSslListener | None = None,
    ) -> None:
        self.root = root
        self.sasl_ssl = sasl_ssl
        self.host = host
        self.port = port
        self.controller_port = controller_port
        self.libs_dir = libs_dir or root / "libs"
        self.config_file = root / "server.properties"
        self.data_dir = root / "data"
        self.logs_dir = root / "logs"
        self.process = BrokerProcess.under(
            root,
            "kafka",
            marker=str(self.config_file),
            logs=[self.logs_dir / "server.log"],
        )

    @property
    def bootstrap(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def sasl_ssl_bootstrap(self) -> str:
        """The SASL_SSL listener's address (only with ``sasl_ssl``)."""
        if self.sasl_ssl is None:
            raise StackError("this Kafka has no SASL_SSL listener")
        return f"{self.host}:{self.sasl_ssl.port}"

    # -- install -------------------------------------------------------------------------------

    def is_installed(self) -> bool:
        return jars_installed(self.libs_dir)

    def install(self) -> None:
        """Copy the broker jars from Maven Central under ``libs_dir`` unless they are there."""
        install_jars(self.libs_dir)

    # -- run -----------------------------------------------------------------------------------

    @property
    def ready_what(self) -> str:
        return f"metadata from {self.bootstrap}"

    def is_ready(self, timeout: float = 2.0) -> bool:
        """True when the broker answers a metadata request."""
        return accepts(self.host, self.port) and kafka_ready(self.bootstrap, timeout)

    def launch(self) -> None:
        """Spawn the broker (formatting storage on first use) without waiting for it."""
        if self.is_running():
            return
        require_free(self.port, "--kafka-port", self.host)
        require_free(self.controller_port, "--controller-port", self.host)
        if self.sasl_ssl is not None:
            require_free(self.sasl_ssl.port, "--kafka-sasl-port", self.host)
        self.install()
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        self.config_file.write_text(self._server_properties())
        self.config_file.chmod(0o600)  # with SASL_SSL it holds the server's private key
        if not (self.data_dir / "meta.properties").is_file():
            self._format()
        elif self.sasl_ssl is not None and not self._scram_marker.is_file():
            raise StackError(
                f"Kafka's storage in {self.data_dir} was formatted without SCRAM users, which are only "
                "added at format time: stop the stack and remove that dir, or use another --dir"
            )
        self.process.spawn(self._java("kafka.Kafka", str(self.config_file)), cwd=self.root)

    # -- helpers -------------------------------------------------------------------------------

    def _java(self, main_class: str, *args: str) -> list[str]:
        java = require_binary("java", JAVA_HINT)
        return [
            java,
            *JVM_OPTIONS,
            f"-Xlog:gc:file={self.logs_dir / 'gc.log'}:uptime:filecount=2,filesize=10M",
            f"-Dkafka.logs.dir={self.logs_dir}",
            f"-Dlog4j2.configurationFile={broker_file('kafka', 'log4j2.yaml')}",
            "-cp",
            str(jars_dir(self.libs_dir) / "*"),
            main_class,
            *args,
        ]

    def _format(self) -> None:
        argv = self._java(
            "kafka.tools.StorageTool",
            "format",
            "--ignore-formatted",
            "-t",
            _cluster_id(),
            "-c",
            str(self.config_file),
            *(self.sasl_ssl.format_arguments() if self.sasl_ssl else ()),
        )
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
        if done.returncode != 0:
            last = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise StackError(f"formatting Kafka storage in {self.data_dir} failed:\n{last}")
        if self.sasl_ssl is not None:
            self._scram_marker.write_text("SCRAM users added when this storage was formatted\n")

    @property
    def _scram_marker(self) -> Path:
        return self.root / "scram-users-formatted"

    def _listeners(self) -> dict[str, str]:
        """Listener name -> port; CONTROLLER is not advertised, SASL_SSL only when configured."""
        listeners = {"PLAINTEXT": self.port, "CONTROLLER": self.controller_port}
        if self.sasl_ssl is not None:
            listeners[SASL_SSL] = self.sasl_ssl.port
        return {name: f"{name}://{self.host}:{port}" for name, port in listeners.items()}

    def _server_properties(self) -> str:
        listeners = self._listeners()
        advertised = [address for name, address in listeners.items() if name != "CONTROLLER"]
        protocols = {"PLAINTEXT": "PLAINTEXT", "CONTROLLER": "PLAINTEXT", SASL_SSL: SASL_SSL}
        settings = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@{self.host}:{self.controller_port}",
            "listeners": ",".join(listeners.values()),
            "advertised.listeners": ",".join(advertised),
            "inter.broker.listener.name": "PLAINTEXT",
            "controller.listener.names": "CONTROLLER",
            "listener.security.protocol.map": ",".join(f"{name}:{protocols[name]}" for name in listeners),
            "log.dirs": str(self.data_dir),
            "num.partitions": "6",
            "auto.create.topics.enable": "true",
            "min.insync.replicas": "1",
            "default.replication.factor": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "transaction.state.log.num.partitions": "6",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            "group.initial.rebalance.delay.ms": "0",
            **(self.sasl_ssl.server_properties() if self.sasl_ssl else {}),
        }
        header = "# written by mqtt_kafka_sync.devstack on every start; edit kafka.py, not this file\n"
        return header + "".join(f"{key}={value}\n" for key, value in settings.items())


def kafka_ready(bootstrap: str, timeout: float = 2.0) -> bool:
    """True when the cluster at ``bootstrap`` answers a metadata request within ``timeout`` seconds."""
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": logger}
    try:
        return bool(AdminClient(config).list_topics(timeout=timeout).brokers)
    except Exception:  # noqa: BLE001 - KafkaException or a timeout: not ready yet
        return False


def _cluster_id() -> str:
    """A random Kafka cluster id: 16 bytes, URL-safe base64 without padding, not starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text
