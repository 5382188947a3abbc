"""MQTT over mutual TLS against the ``secure`` Mosquitto (client certificate, password and ACL required).

The bridge logs in as ``bridge`` with its certificate and an encrypted key; devices as ``device-1``
(:mod:`tests.integration.secure_mqtt`: the ACL lets a device write and read only
``plants/+/devices/<its user name>/...``), so every test uses topics
``plants/<unique plant>/devices/device-1/...``. Kafka is the plain listener here.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from mqtt_kafka_sync.cli.main import main
from mqtt_kafka_sync.config.model import MqttTls
from mqtt_kafka_sync.devstack.secure import BRIDGE_USER, DEVICE_USER, SecureEndpoints
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt.subscriber import MqttSubscriber, SubscriberSettings
from mqtt_kafka_sync.sim.command_devices import CommandFleet, produce_commands
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.verify import verify_topic
from tests.conftest import Brokers
from tests.integration.secure_mqtt import bridge_keys, device_access
from tests.integration.worker_process import WorkerProcess

pytestmark = pytest.mark.integration


def _write(path: Path, name: str, config: dict[str, str]) -> Path:
    path.write_text(json.dumps({"name": name, "config": config}, indent=2))
    return path


def test_10000_qos1_messages_over_mutual_tls_arrive_once_each_in_order(
    brokers: Brokers, secure: SecureEndpoints, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    plant, topic = f"s{tag}-p01", f"telemetry-{tag}"
    ensure_topics(brokers.kafka_bootstrap, [topic, f"{topic}-dlq"], partitions=3)
    config = _write(
        tmp_path / "ingest.json",
        f"ingest-{tag}",
        {
            "connector.class": "mqtt_kafka_sync.MqttSourceConnector",
            "mqtt.shared.group": f"g{tag}",
            "mqtt.client.id": f"ingest-{tag}",
            "mqtt.topics": f"plants/{plant}/devices/+/telemetry",
            "kafka.bootstrap.servers": brokers.kafka_bootstrap,
            "routes": "telemetry",
            "routes.telemetry.mqtt.topic": "plants/{plant}/devices/{device}/telemetry",
            "routes.telemetry.kafka.topic": topic,
            "routes.telemetry.value.format": "json",
            "errors.deadletterqueue.topic.name": f"{topic}-dlq",
            **bridge_keys(secure),
        },
    )
    worker = WorkerProcess(config, tmp_path).start()
    try:
        worker.wait_subscribed()
        template = f"plants/s{tag}-{{plant}}/devices/{DEVICE_USER}/telemetry"
        host, port = secure.mqtt_address
        simulator = DeviceSimulator(
            host, port, 1, 10_000, clients=1, topic_template=template, access=device_access(secure)
        )
        result = simulator.run()
        assert result.ok and result.acked == 10_000, result.summary()
        report = verify_topic(brokers.kafka_bootstrap, topic, simulator.expected, timeout_s=120, idle_s=15)
        print(f"\n[mtls ingest] {report.summary()}")
        assert report.lost == 0 and report.duplicated == 0 and report.out_of_order == 0, report.summary()
        assert report.delivered == 10_000
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()


def test_2000_commands_reach_a_device_subscribed_over_mutual_tls(
    brokers: Brokers, secure: SecureEndpoints, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    topic = f"commands-{tag}"
    ensure_topics(brokers.kafka_bootstrap, [topic, f"{topic}-dlq"], partitions=3)
    config = _write(
        tmp_path / "relay.json",
        f"relay-{tag}",
        {
            "connector.class": "mqtt_kafka_sync.KafkaCommandRelayConnector",
            "kafka.bootstrap.servers": brokers.kafka_bootstrap,
            "routes": "cmd",
            "routes.cmd.kafka.topic": topic,
            "routes.cmd.kafka.key": "{plant}.{device}",
            "routes.cmd.mqtt.topic": "plants/{plant}/devices/{device}/commands",
            "errors.deadletterqueue.topic.name": f"{topic}-dlq",
            **bridge_keys(secure),
        },
    )
    host, port = secure.mqtt_address
    device = f"s{tag}.{DEVICE_USER}"
    fleet = CommandFleet(
        host,
        port,
        [device],
        template="plants/{plant}/devices/{device}/commands",
        access=device_access(secure),
    )
    fleet.start()
    worker = WorkerProcess(config, tmp_path, "relay").start()
    try:
        expected = produce_commands(brokers.kafka_bootstrap, topic, [device], 2_000)
        report = fleet.wait_complete(expected, timeout=90)
        print(f"\n[mtls relay] {report.summary()}")
        assert report.lost == 0 and report.delivered >= 2_000, report.summary()
        assert worker.stop() == 0, worker.log()
    finally:
        if worker.alive():
            worker.stop()
        fleet.stop()


class Handler:
    def on_connected(self, generation: int, session_present: bool) -> None:
        pass

    def on_message(self, message: p.Publish, generation: int) -> None:
        pass

    def on_disconnected(self, generation: int, reason: str) -> None:
        pass

    def on_tick(self) -> float | None:
        return None


def _subscriber(secure: SecureEndpoints, tls: MqttTls, host: str = "127.0.0.1") -> MqttSubscriber:
    _, port = secure.mqtt_address
    settings = SubscriberSettings(
        host=host,
        port=port,
        client_id=f"tls-{uuid.uuid4().hex[:8]}",
        filters=(),
        qos=1,
        session_expiry=60,
        username=BRIDGE_USER,
        password=secure.material.mqtt_users[BRIDGE_USER],
        connect_timeout=5.0,
        tls=tls,
    )
    subscriber = MqttSubscriber(settings, Handler())
    subscriber.start()
    return subscriber


def _wait_logged(caplog: pytest.LogCaptureFixture, words: str, timeout: float = 15.0) -> logging.LogRecord:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for record in caplog.records:
            if words in record.getMessage():
                return record
        time.sleep(0.1)
    raise AssertionError(f"no log line with {words!r}: {[r.getMessage() for r in caplog.records]}")


def test_a_certificate_rotated_on_disk_is_used_at_the_next_reconnect(
    secure: SecureEndpoints, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    certs = secure.material.certs
    cert, key = tmp_path / "bridge.pem", tmp_path / "bridge.key"

    def install(name: str) -> None:
        shutil.copy(certs.client_cert(name), cert)
        shutil.copy(certs.client_key(name), key)

    install("bridge")
    caplog.set_level(logging.DEBUG, logger="mqtt_kafka_sync")
    subscriber = _subscriber(secure, MqttTls(certs.ca, cert, key))
    try:
        assert subscriber.wait_connected(15)
        install("expired")  # the broker must refuse this one: proves the files are read again
        subscriber.reconnect("certificate rotated")
        record = _wait_logged(caplog, "the broker refused our client certificate")
        assert record.exc_info is None
        assert not subscriber.wait_connected(0.1)
        install("bridge")  # a valid pair again: taken at the next attempt, no restart
        # The next attempt comes after a refused certificate's backoff: 30 to 60 s (not retriable).
        assert subscriber.wait_connected(75)
    finally:
        subscriber.stop()


@pytest.mark.parametrize(
    ("host", "ca", "words"),
    [
        ("vm", "ca", "hostname mismatch: the broker's certificate is not valid for 'vm'"),
        ("127.0.0.1", "rogue_ca", "certificate verify failed: self-signed certificate in certificate chain"),
    ],
)
def test_a_broker_we_cannot_trust_is_refused_in_words_without_a_traceback(
    secure: SecureEndpoints, caplog: pytest.LogCaptureFixture, host: str, ca: str, words: str
) -> None:
    certs = secure.material.certs
    tls = MqttTls(getattr(certs, ca), certs.client_cert("bridge"), certs.client_key("bridge"))
    caplog.set_level(logging.DEBUG, logger="mqtt_kafka_sync")
    subscriber = _subscriber(secure, tls, host)
    try:
        record = _wait_logged(caplog, words)
        assert record.levelno >= logging.WARNING and record.exc_info is None
        assert not subscriber.wait_connected(0.1)
        assert all(r.exc_info is None for r in caplog.records)
    finally:
        subscriber.stop()


def test_the_simulator_cli_takes_tls_options(secure: SecureEndpoints, tmp_path: Path, capsys: Any) -> None:
    certs = secure.material.certs
    password = tmp_path / "pw"
    password.write_text(secure.material.mqtt_users[DEVICE_USER])
    tag = uuid.uuid4().hex[:8]
    code = main(
        [
            "simulate",
            "--mqtt-uri", secure.mqtt_uri,
            "--mqtt-username", DEVICE_USER,
            "--mqtt-password-file", str(password),
            "--mqtt-ca", str(certs.ca),
            "--mqtt-cert", str(certs.client_cert("device")),
            "--mqtt-key", str(certs.client_key("device")),
            "--devices", "1", "--messages", "50", "--clients", "1",
            "--topic-template", f"plants/s{tag}-{{plant}}/devices/{DEVICE_USER}/telemetry",
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr()
