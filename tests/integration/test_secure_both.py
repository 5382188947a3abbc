"""Issue 13's "over both at once": the bridge given only the secured brokers of the ``secure``
fixture, MQTT over mutual TLS with a password and an ACL, Kafka over SASL_SSL (SCRAM-SHA-512).

Ingest: 10,000 QoS 1 messages arrive once each and in order, the supervisor's lag reader child
authenticates (its lag series is on /metrics) and a dead letter is written through SASL. Relay:
2,000 commands consumed through SASL reach devices subscribed over TLS. The connector keys come
from :mod:`tests.integration.secure_mqtt` and :mod:`tests.integration.secure_kafka`; the topics
have the ACL's shape ``plants/<unique plant>/devices/device-1/...``.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from mqtt_kafka_sync.devstack import free_ports
from mqtt_kafka_sync.devstack.secure import DEVICE_USER, SecureEndpoints
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.command_devices import CommandFleet
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.raw import publish_raw
from mqtt_kafka_sync.sim.verify import verify_topic
from tests.integration.relay_scenario import RelayScenario
from tests.integration.secure_kafka import kafka_keys, sasl_connection
from tests.integration.secure_mqtt import bridge_keys, device_access
from tests.integration.test_ingest import PARTITIONS
from tests.integration.test_secure_kafka import commit_offsets, throttle_keys, wait_metric
from tests.integration.topic_reads import wait_records
from tests.integration.worker_process import WorkerProcess, write_source_config

pytestmark = pytest.mark.integration

MESSAGES = 10_000
COMMANDS_PER_DEVICE, COMMAND_DEVICES = 500, 4


def test_ingest_10000_qos1_messages_over_mutual_tls_and_sasl_with_lag_reader_and_dead_letter(
    secure: SecureEndpoints, tmp_path: Path
) -> None:
    kafka = sasl_connection(secure)
    tag = uuid.uuid4().hex[:8]
    plant, topic, group = f"b{tag}-p01", f"telemetry-{tag}", f"downstream-{tag}"
    ensure_topics(kafka, [topic, f"{topic}-dlq"], partitions=PARTITIONS)
    commit_offsets(kafka, group, topic)
    keys = {**bridge_keys(secure), **kafka_keys(secure, password_file=tmp_path / "kafka.password")}
    assert keys["mqtt.server.uri"].startswith("ssl://") and keys["kafka.security.protocol"] == "SASL_SSL"
    config = write_source_config(
        tmp_path / "ingest.json",
        secure,
        name=f"both-{tag}",
        root="plants",
        topic=topic,
        **{
            "mqtt.topics": f"plants/{plant}/devices/+/telemetry",
            "routes.telemetry.mqtt.topic": "plants/{plant}/devices/{device}/telemetry",
            **keys,
            **throttle_keys(group),
        },
    )
    port = free_ports(1)[0]
    worker = WorkerProcess(config, tmp_path, metrics_port=port).start()
    try:
        worker.wait_subscribed()
        host, mqtt_port = secure.mqtt_address
        template = f"plants/b{tag}-{{plant}}/devices/{DEVICE_USER}/telemetry"
        simulator = DeviceSimulator(
            host, mqtt_port, 1, MESSAGES, clients=1, topic_template=template, access=device_access(secure)
        )
        result = simulator.run()
        assert result.ok and result.acked == MESSAGES, result.summary()
        report = verify_topic(kafka, topic, simulator.expected, timeout_s=120, idle_s=15)
        print(f"\n[tls + sasl ingest] {report.summary()}")
        assert report.lost == 0 and report.duplicated == 0 and report.out_of_order == 0, report.summary()
        assert report.delivered == MESSAGES, report.summary()

        bad_topic = f"plants/{plant}/devices/{DEVICE_USER}/telemetry"
        publish_raw(host, mqtt_port, bad_topic, b"not json {", qos=1, access=device_access(secure))
        (dead,) = wait_records(kafka, f"{topic}-dlq", 1)
        assert dead.headers["dlq.reason"] == b"bad-payload" and dead.value == b"not json {"

        lag = wait_metric(f"http://127.0.0.1:{port}", "mqtt_kafka_sync_consumer_lag", f'"{group}"', MESSAGES)
        assert lag, f"no consumer lag of {group} on /metrics:\n{worker.log()}"
        assert sum(float(line.rsplit(" ", 1)[1]) for line in lag) >= MESSAGES, lag  # committed 0
        assert worker.stop() == 0, worker.log()
        log = worker.log_file.read_text()
        assert " ERROR " not in log and "Traceback" not in log, log
    finally:
        if worker.alive():
            worker.stop()


def test_relay_2000_commands_through_sasl_to_devices_subscribed_over_tls(
    secure: SecureEndpoints, tmp_path: Path
) -> None:
    template = "plants/{plant}/devices/{device}/commands"
    scenario = RelayScenario(
        secure,
        tmp_path,
        sasl_connection(secure),
        **bridge_keys(secure),
        **kafka_keys(secure),
        **{"routes.cmd.mqtt.topic": template, "routes.cmd.mqtt.response.topic": template + "/response"},
    )
    devices = [f"b{scenario.root}-p{i}.{DEVICE_USER}" for i in range(COMMAND_DEVICES)]
    host, port = secure.mqtt_address
    fleet = CommandFleet(host, port, devices, template=template, access=device_access(secure))
    fleet.start()
    worker = scenario.worker().start()
    try:
        worker.wait_subscribed()
        expected = scenario.produce(devices, COMMANDS_PER_DEVICE)
        report = fleet.wait_complete(expected, timeout=90)
        print(f"\n[sasl + tls relay] {report.summary()}")
        assert report.lost == 0 and report.out_of_order == 0 and report.foreign == 0, report.summary()
        assert report.delivered >= COMMANDS_PER_DEVICE * COMMAND_DEVICES, report.summary()
        assert worker.stop() == 0, worker.log()
        assert scenario.committed() == COMMANDS_PER_DEVICE * COMMAND_DEVICES
    finally:
        if worker.alive():
            worker.stop()
        fleet.stop()
