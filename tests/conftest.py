"""Fixtures shared by every test tier.

``brokers`` (session) is a real Kafka and a real MQTT broker, found in this order:

1. ``KAFKA_BOOTSTRAP_SERVERS`` and ``MQTT_SERVER_URI`` both set: bring your own (e.g. from
   ``mqtt-kafka-sync stack up``); tests that stop or start brokers are skipped.
2. A Docker engine answers: apache/kafka and eclipse-mosquitto containers via testcontainers.
3. Otherwise the local stack (mqtt_kafka_sync.devstack) in a temporary dir on ports the OS picks;
   the Kafka jars are cached in ``<repo>/.stack/kafka/libs``, so mvn runs once per machine.

A broker that cannot be started fails the session loudly; it never skips.

``secure`` (session) is Kafka's SASL_SSL listener and a TLS-only Mosquitto with certificates and
users (see its docstring); in the local tier the ``brokers`` stack runs them too.

``hivemq`` (session) is the same Kafka with HiveMQ Community Edition as the MQTT broker:
``HIVEMQ_SERVER_URI`` when set, otherwise the embedded HiveMQ of ``mqtt_kafka_sync.devstack.hivemq``
on a port the OS picks (jars cached in ``<repo>/.stack/hivemq/libs``). It fails loudly too.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn
from urllib.parse import urlsplit

import pytest

from mqtt_kafka_sync.devstack import HiveMQProcess, LocalStack, free_ports, kafka_ready, mqtt5_handshake
from mqtt_kafka_sync.devstack.paths import broker_file, repo_root
from mqtt_kafka_sync.devstack.secure import SecureEndpoints, SecureMaterial
from mqtt_kafka_sync.errors import StackError

KAFKA_IMAGE = "apache/kafka:4.3.1"  # the version mqtt_kafka_sync/devstack/brokers/kafka/pom.xml runs locally
MOSQUITTO_IMAGE = "eclipse-mosquitto:2"
READY_TIMEOUT = 120.0


class Brokers:
    """Endpoints of the test brokers, and fault injection where the tests own them."""

    kind = "external"

    def __init__(self, kafka_bootstrap: str, mqtt_uri: str) -> None:
        self.kafka_bootstrap = kafka_bootstrap
        self.mqtt_uri = mqtt_uri
        parts = urlsplit(mqtt_uri)
        self.mqtt_host: str = parts.hostname or "127.0.0.1"
        self.mqtt_port: int = parts.port or 1883

    @property
    def controllable(self) -> bool:
        return self.kind != "external"

    def stop_kafka(self) -> None:
        self._uncontrollable()

    def start_kafka(self) -> None:
        self._uncontrollable()

    def kill_kafka(self) -> None:
        self._uncontrollable()

    def stop_mqtt(self) -> None:
        self._uncontrollable()

    def start_mqtt(self) -> None:
        self._uncontrollable()

    def kill_mqtt(self) -> None:
        self._uncontrollable()

    def _uncontrollable(self) -> NoReturn:
        pytest.skip(
            "brokers given by KAFKA_BOOTSTRAP_SERVERS / MQTT_SERVER_URI cannot be stopped or started "
            "by the tests; unset both to let the tests run their own"
        )

    def wait_ready(self) -> None:
        _wait(lambda: kafka_ready(self.kafka_bootstrap), f"Kafka at {self.kafka_bootstrap}")
        _wait(lambda: mqtt5_handshake(self.mqtt_host, self.mqtt_port), f"MQTT at {self.mqtt_uri}")


class LocalBrokers(Brokers):
    """The devstack's processes, owned by this test session."""

    kind = "local"

    def __init__(self, stack: LocalStack) -> None:
        super().__init__(stack.kafka_bootstrap, stack.mqtt_uri)
        self.stack = stack

    def stop_kafka(self) -> None:
        self.stack.kafka.stop()

    def start_kafka(self) -> None:
        self.stack.kafka.start(READY_TIMEOUT)

    def kill_kafka(self) -> None:
        self.stack.kafka.kill()

    def stop_mqtt(self) -> None:
        self.stack.mosquitto.stop()

    def start_mqtt(self) -> None:
        self.stack.mosquitto.start(READY_TIMEOUT)

    def kill_mqtt(self) -> None:
        self.stack.mosquitto.kill()


class DockerBrokers(Brokers):
    """Containers on fixed host ports, so a stopped and restarted broker keeps its address."""

    kind = "docker"

    def __init__(self, kafka: Any, mosquitto: Any, kafka_port: int, mqtt_port: int) -> None:
        super().__init__(f"127.0.0.1:{kafka_port}", f"tcp://127.0.0.1:{mqtt_port}")
        self.kafka, self.mosquitto = kafka, mosquitto

    def stop_kafka(self) -> None:
        self.kafka.get_wrapped_container().stop(timeout=30)

    def start_kafka(self) -> None:
        self.kafka.get_wrapped_container().start()
        self.wait_ready()

    def kill_kafka(self) -> None:
        self.kafka.get_wrapped_container().kill()

    def stop_mqtt(self) -> None:
        self.mosquitto.get_wrapped_container().stop(timeout=15)

    def start_mqtt(self) -> None:
        self.mosquitto.get_wrapped_container().start()
        self.wait_ready()

    def kill_mqtt(self) -> None:
        self.mosquitto.get_wrapped_container().kill()


def _wait(probe: Callable[[], bool], what: str, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        if time.monotonic() > deadline:
            raise StackError(f"{what} did not answer within {timeout:.0f}s")
        time.sleep(0.5)


def _docker_answers() -> bool:
    if shutil.which("docker") is None:
        return False
    try:
        return subprocess.run(["docker", "info"], capture_output=True, timeout=5, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _docker_brokers() -> Iterator[Brokers]:
    from testcontainers.core.container import DockerContainer  # noqa: PLC0415 - only with Docker

    kafka_port, mqtt_port = free_ports(2)
    kafka = (
        DockerContainer(KAFKA_IMAGE)
        .with_bind_ports(9092, kafka_port)
        .with_envs(
            CLUSTER_ID="MkU3OEVBNTcwNTJENDM2Qk",
            KAFKA_NODE_ID="1",
            KAFKA_PROCESS_ROLES="broker,controller",
            KAFKA_LISTENERS="PLAINTEXT://:9092,CONTROLLER://:9093",
            KAFKA_ADVERTISED_LISTENERS=f"PLAINTEXT://127.0.0.1:{kafka_port}",
            KAFKA_CONTROLLER_LISTENER_NAMES="CONTROLLER",
            KAFKA_LISTENER_SECURITY_PROTOCOL_MAP="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            KAFKA_CONTROLLER_QUORUM_VOTERS="1@localhost:9093",
            KAFKA_NUM_PARTITIONS="6",
            KAFKA_AUTO_CREATE_TOPICS_ENABLE="true",
            KAFKA_MIN_INSYNC_REPLICAS="1",
            KAFKA_DEFAULT_REPLICATION_FACTOR="1",
            KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_OFFSETS_TOPIC_NUM_PARTITIONS="6",
            KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR="1",
            KAFKA_TRANSACTION_STATE_LOG_MIN_ISR="1",
            KAFKA_TRANSACTION_STATE_LOG_NUM_PARTITIONS="6",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR="1",
            KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR="1",
            KAFKA_GROUP_INITIAL_REBALANCE_DELAY_MS="0",
        )
    )
    conf = broker_file("mosquitto", "mosquitto.conf")
    mosquitto = (
        DockerContainer(MOSQUITTO_IMAGE)
        .with_bind_ports(11883, mqtt_port)
        .with_volume_mapping(str(conf), "/mosquitto/config/mosquitto.conf", "ro")
    )
    with kafka, mosquitto:
        brokers = DockerBrokers(kafka, mosquitto, kafka_port, mqtt_port)
        brokers.wait_ready()
        yield brokers


def _kafka_libs() -> Path:
    return repo_root() / ".stack" / "kafka" / "libs"


def _local_brokers(root: Path) -> Iterator[Brokers]:
    # secure: the same Kafka also serves the `secure` fixture (one JVM); a TLS-only Mosquitto runs
    # beside the plain one. Neither changes the plain endpoints the other tests use.
    stack = LocalStack.ephemeral(root, libs_dir=_kafka_libs(), secure=True)
    try:
        stack.up(timeout=READY_TIMEOUT)
        yield LocalBrokers(stack)
    finally:
        stack.down()


@pytest.fixture(scope="session")
def brokers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brokers]:
    bootstrap, uri = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MQTT_SERVER_URI")
    if bool(bootstrap) != bool(uri):
        pytest.fail("set both KAFKA_BOOTSTRAP_SERVERS and MQTT_SERVER_URI, or neither", pytrace=False)
    try:
        if bootstrap and uri:
            external = Brokers(bootstrap, uri)
            external.wait_ready()
            yield external
        elif _docker_answers():
            yield from _docker_brokers()
        else:
            yield from _local_brokers(tmp_path_factory.mktemp("stack"))
    except StackError as exc:
        pytest.fail(f"test brokers unavailable: {exc}", pytrace=False)


class HiveMQBrokers(Brokers):
    """The session's Kafka (from ``brokers``) with an embedded HiveMQ CE this session owns."""

    kind = "hivemq"

    def __init__(self, kafka: Brokers, hivemq: HiveMQProcess) -> None:
        super().__init__(kafka.kafka_bootstrap, hivemq.uri)
        self.kafka = kafka
        self.hivemq = hivemq

    def stop_kafka(self) -> None:
        self.kafka.stop_kafka()

    def start_kafka(self) -> None:
        self.kafka.start_kafka()

    def kill_kafka(self) -> None:
        self.kafka.kill_kafka()

    def stop_mqtt(self) -> None:
        self.hivemq.stop()

    def start_mqtt(self) -> None:
        self.hivemq.start(READY_TIMEOUT)

    def kill_mqtt(self) -> None:
        self.hivemq.kill()


@pytest.fixture(scope="session")
def hivemq(brokers: Brokers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Brokers]:
    """Kafka from ``brokers`` and HiveMQ CE: ``HIVEMQ_SERVER_URI`` if set, else started here."""
    uri = os.environ.get("HIVEMQ_SERVER_URI")
    if uri:
        external = Brokers(brokers.kafka_bootstrap, uri)
        try:
            external.wait_ready()
        except StackError as exc:
            pytest.fail(f"HiveMQ at HIVEMQ_SERVER_URI={uri} unavailable: {exc}", pytrace=False)
        yield external
        return
    process = HiveMQProcess(
        tmp_path_factory.mktemp("hivemq"),
        port=free_ports(1)[0],
        libs_dir=repo_root() / ".stack" / "hivemq" / "libs",
    )
    try:
        process.start(READY_TIMEOUT)
    except StackError as exc:
        process.stop()
        pytest.fail(f"embedded HiveMQ CE could not start: {exc}", pytrace=False)
    try:
        yield HiveMQBrokers(brokers, process)
    finally:
        process.stop()


@pytest.fixture
def unique(request: pytest.FixtureRequest) -> str:
    """A name no other test run uses, for topics, groups and MQTT client ids: ``<test>-<uuid>``."""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", request.node.name).strip("-")[:60]
    return f"{base}-{uuid.uuid4().hex[:12]}"


SECURE_ENV = ("SECURE_KAFKA_BOOTSTRAP_SERVERS", "SECURE_MQTT_SERVER_URI", "SECURE_MATERIAL_DIR")


@pytest.fixture(scope="session")
def secure(brokers: Brokers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureEndpoints]:
    """Kafka's SASL_SSL listener and a TLS-only Mosquitto, with the CA, client certificates, users.

    1. ``SECURE_KAFKA_BOOTSTRAP_SERVERS``, ``SECURE_MQTT_SERVER_URI`` and ``SECURE_MATERIAL_DIR`` all
       set (``mqtt-kafka-sync stack up --secure`` prints them): bring your own.
    2. No Docker tier. The session's local stack runs them already (``_local_brokers``); with
       external or Docker ``brokers``, a secured local stack of its own. Never skips.
    """
    values = [os.environ.get(name, "") for name in SECURE_ENV]
    if any(values) and not all(values):
        pytest.fail(f"set all of {', '.join(SECURE_ENV)}, or none", pytrace=False)
    try:
        if all(values):
            endpoints = SecureEndpoints(values[0], values[1], SecureMaterial(Path(values[2])))
            _wait(endpoints.is_ready, f"secured brokers at {values[0]} and {values[1]}")
            yield endpoints
        elif isinstance(brokers, LocalBrokers) and brokers.stack.material is not None:
            yield brokers.stack.secure_endpoints
        else:
            own = LocalStack.ephemeral(tmp_path_factory.mktemp("secure"), libs_dir=_kafka_libs(), secure=True)
            try:
                own.up(timeout=READY_TIMEOUT)
                yield own.secure_endpoints
            finally:
                own.down()
    except StackError as exc:
        pytest.fail(f"secured test brokers unavailable: {exc}", pytrace=False)
