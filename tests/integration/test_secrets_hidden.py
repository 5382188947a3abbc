"""No secret of a connector file shows in any output: ``validate`` (passing and failing), the
worker's log, its status file, ``/metrics`` and ``/readyz``.

The secrets: the SASL password (read with ``${file:...}``, the bridge on Kafka's SASL_SSL listener,
so it is really used), an MQTT password (the plain Mosquitto allows anonymous clients and simply
ignores it) and an ``ssl.key.password`` (only in the failing ``validate``). The worker runs a lag
throttle, so the settings also cross to the lag reader child.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from mqtt_kafka_sync.devstack import free_ports
from mqtt_kafka_sync.devstack.secure import SecureEndpoints
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.raw import publish_raw
from tests.integration.secure_kafka import kafka_keys, sasl_connection
from tests.integration.test_secure_kafka import commit_offsets, http_get, throttle_keys, wait_metric
from tests.integration.worker_process import WorkerProcess, write_source_config

pytestmark = pytest.mark.integration


def validate(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mqtt_kafka_sync", "validate", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [secret for secret in secrets if secret in text]


def test_no_secret_in_validate_output_logs_status_file_or_metrics(
    brokers: Any, secure: SecureEndpoints, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    mqtt_password = f"mqtt-Pw-{uuid.uuid4().hex}"
    key_password = f"key-Pw-{uuid.uuid4().hex}"
    kafka_password = secure.kafka_settings()["sasl.password"]
    secrets = [mqtt_password, key_password, kafka_password]
    root, topic, group = f"s{tag}", f"secrets-{tag}", f"secrets-down-{tag}"
    kafka = sasl_connection(secure)
    ensure_topics(kafka, [topic, f"{topic}-dlq"], partitions=6)
    commit_offsets(kafka, group, topic)
    extra = {
        **kafka_keys(secure, password_file=tmp_path / "kafka.password"),
        **throttle_keys(group),
        "mqtt.username": "bridge",
        "mqtt.password": mqtt_password,
    }
    config = write_source_config(
        tmp_path / "ok.json", brokers, name=f"secrets-{tag}", root=root, topic=topic, **extra
    )

    ok = validate(config)
    assert ok.returncode == 0, ok.stderr
    assert not leaks(ok.stdout + ok.stderr, secrets)

    wrong_ca = tmp_path / "not-a-ca.pem"
    wrong_ca.write_text("-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n")
    broken = json.loads(config.read_text())
    broken["config"] |= {
        "kafka.ssl.ca.location": str(wrong_ca),
        "kafka.ssl.key.password": key_password,
        "kafka.producer.sasl.password": mqtt_password,
    }
    bad_config = tmp_path / "bad.json"
    bad_config.write_text(json.dumps(broken))
    bad = validate(bad_config)
    assert bad.returncode != 0 and "ssl.ca.location" in bad.stderr, bad.stderr
    assert "Traceback" not in bad.stderr, bad.stderr
    assert not leaks(bad.stdout + bad.stderr, secrets), bad.stdout + bad.stderr

    port = free_ports(1)[0]
    base = f"http://127.0.0.1:{port}"
    worker = WorkerProcess(config, tmp_path, "secrets", metrics_port=port).start()
    try:
        worker.wait_subscribed()
        telemetry = f"{root}/plants/p01/devices/d0001/telemetry"
        publish_raw(brokers.mqtt_host, brokers.mqtt_port, telemetry, b'{"seq": 1}', qos=1)
        publish_raw(brokers.mqtt_host, brokers.mqtt_port, telemetry, b"not json", qos=1)
        assert wait_metric(base, "mqtt_kafka_sync_consumer_lag", f'"{group}"'), worker.log()
        deadline = time.monotonic() + 30
        while worker.totals().get("acked", 0) < 2:
            assert time.monotonic() < deadline, worker.log()
            time.sleep(0.2)
        outputs = {
            "/metrics": http_get(f"{base}/metrics")[1],
            "/readyz": http_get(f"{base}/readyz")[1],
            "status file": worker.status_file.read_text(),
        }
        assert worker.stop() == 0, worker.log()
        outputs["log"] = worker.log_file.read_text()
    finally:
        if worker.alive():
            worker.stop()
    for where, text in outputs.items():
        assert text, f"{where} is empty"
        assert not leaks(text, secrets), f"a secret in {where}:\n{text}"
