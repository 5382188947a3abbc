"""HiveMQ Community Edition, embedded, as a second MQTT 5 broker for the tests (jars from Maven Central).

``brokers/hivemq/pom.xml`` names ``com.hivemq:hivemq-community-edition-embedded``; on first use Maven
copies its runtime jars under ``libs_dir`` and ``javac`` compiles ``brokers/hivemq/Launcher.java``
beside them, once per version of those two files (the same cache, lock and marker scheme as the Kafka
jars in :mod:`mqtt_kafka_sync.devstack.jars`). Layout under ``root``: ``conf/`` (``config.xml`` and
``logback.xml`` from ``brokers/hivemq/``), ``data/`` (file persistence: sessions, queues, retained
messages), ``extensions/`` (empty), ``hivemq.out`` (the broker's log) and ``hivemq.pid``.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
from pathlib import Path

from mqtt_kafka_sync.devstack.jars import JAVA_HINT, install_once, installed, require_binary
from mqtt_kafka_sync.devstack.mosquitto import ManagedMqttBroker
from mqtt_kafka_sync.devstack.paths import broker_file
from mqtt_kafka_sync.devstack.ports import LOCALHOST, require_free
from mqtt_kafka_sync.devstack.process import BrokerProcess
from mqtt_kafka_sync.errors import StackError

logger = logging.getLogger(__name__)

DEFAULT_PORT = 11884
JVM_OPTIONS = ("-Xms256m", "-Xmx1g", "-XX:+ExitOnOutOfMemoryError", "-Djava.awt.headless=true")
_INPUTS = ("pom.xml", "Launcher.java")


class HiveMQProcess(ManagedMqttBroker):
    """One embedded HiveMQ CE broker listening on ``host:port`` (MQTT 3.1, 3.1.1 and 5, anonymous)."""

    READY_TIMEOUT = 60.0
    STOP_TIMEOUT = 30.0

    def __init__(
        self, root: Path, *, port: int = DEFAULT_PORT, host: str = LOCALHOST, libs_dir: Path | None = None
    ) -> None:
        self.root = root.resolve()
        self.host = host
        self.port = port
        self.libs_dir = (libs_dir or root / "libs").resolve()
        self.conf_dir = self.root / "conf"
        self.data_dir = self.root / "data"
        self.extensions_dir = self.root / "extensions"
        self.process = BrokerProcess.under(
            self.root,
            "hivemq",
            marker=str(self.conf_dir),
        )

    def is_installed(self) -> bool:
        return installed(launcher_dir(self.libs_dir))

    def install(self) -> Path:
        """The jars and compiled launcher, fetched and built under ``libs_dir`` unless there already."""
        return install_launcher(self.libs_dir)

    def launch(self) -> None:
        if self.is_running():
            return
        require_free(self.port, "--hivemq-port", self.host)
        launcher = self.install()
        java = require_binary("java", JAVA_HINT)
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        for name in ("config.xml", "logback.xml"):
            shutil.copyfile(broker_file("hivemq", name), self.conf_dir / name)
        argv = [
            java,
            *JVM_OPTIONS,
            "-cp",
            f"{launcher / 'libs' / '*'}{os.pathsep}{launcher / 'classes'}",
            "Launcher",
            *("--port", str(self.port), "--bind", self.host),
            *("--conf", str(self.conf_dir), "--data", str(self.data_dir)),
            *("--extensions", str(self.extensions_dir)),
        ]
        self.process.spawn(argv, cwd=self.root)


def launcher_dir(libs_dir: Path) -> Path:
    """Where the jars and the launcher of the current pom and Launcher.java live (or will)."""
    digest = hashlib.sha256()
    for name in _INPUTS:
        digest.update(broker_file("hivemq", name).read_bytes())
    return libs_dir / digest.hexdigest()[:16]


def install_launcher(libs_dir: Path) -> Path:
    """Copy HiveMQ's runtime jars from Maven Central into ``<dir>/libs`` and compile the launcher into
    ``<dir>/classes``, unless done already; ``<dir>``, under ``libs_dir``."""
    java_hint = "a JDK 17 or newer with javac (apt-get install openjdk-17-jdk-headless)"
    require_binary("java", JAVA_HINT)
    javac = require_binary("javac", java_hint)
    mvn = require_binary("mvn", "Maven (apt-get install maven)")
    pom = broker_file("hivemq", "pom.xml")

    def build(staging: Path) -> None:
        fetch = [mvn, "-q", "-B", "-f", str(pom), "dependency:copy-dependencies", "-DincludeScope=runtime"]
        _run([*fetch, f"-DoutputDirectory={staging / 'libs'}"], staging, "download the HiveMQ jars")
        compile_ = [javac, "-d", str(staging / "classes"), "-cp", str(staging / "libs" / "*")]
        _run([*compile_, str(broker_file("hivemq", "Launcher.java"))], staging, "compile Launcher.java")

    what, tools = "HiveMQ CE (embedded)", "mvn and javac"
    return install_once(libs_dir, launcher_dir(libs_dir), what=what, tools=tools, source=pom, build=build)


def _run(argv: list[str], staging: Path, what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
    if done.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        last = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise StackError(
            f"could not {what} (is Maven Central reachable? is a JDK installed?); "
            f"ran: {' '.join(argv)}\n{last}"
        )
