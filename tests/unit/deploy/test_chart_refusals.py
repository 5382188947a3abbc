"""What the chart refuses, each with a message that names the value and the fix: more replicas than
shards in the sharded mode, a grace period the drain does not fit in, one MQTT client id for many
pods, a connector class it does not know."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.chart import CHART, named, render, template_error

SHARDED = {
    "connector.class": "mqtt_kafka_sync.MqttSourceConnector",
    "mqtt.server.uri": "tcp://mosquitto:1883",
    "mqtt.subscription": "sharded",
    "mqtt.shards": "a,b,c",
    "kafka.bootstrap.servers": "kafka:9092",
    "routes": "t",
    "routes.t.mqtt.topic": "plants/{plant}/devices/{device}/telemetry",
    "routes.t.kafka.topic": "telemetry",
}


def _sharded(**ingest: Any) -> dict[str, Any]:
    return {"connectors": [{"name": "sharded", "config": SHARDED}], "ingest": ingest}


def _render_values(values: dict[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / f"values-{len(list(tmp_path.iterdir()))}.yaml"  # a new name: renders are cached by path
    path.write_text(yaml.safe_dump(values))
    return render("default", "-f", str(path))


def test_sharded_mode_refuses_more_replicas_than_shards(tmp_path: Path) -> None:
    error = template_error(_sharded(replicas=4), tmp_path)
    assert "ingest.replicas is 4 but connector sharded has 3 shards (mqtt.shards=a,b,c)" in error
    assert "Set ingest.replicas to at most 3" in error


def test_sharded_mode_refuses_an_autoscaler_that_could_go_past_the_shards(tmp_path: Path) -> None:
    values = _sharded(replicas=2, autoscaling={"enabled": True, "minReplicas": 2, "maxReplicas": 4})
    error = template_error(values, tmp_path)
    assert "ingest.autoscaling.maxReplicas is 4 but connector sharded has 3 shards" in error


@pytest.mark.parametrize("replicas", [1, 3])
def test_sharded_mode_accepts_up_to_the_shard_count(replicas: int, tmp_path: Path) -> None:
    manifests = _render_values(_sharded(replicas=replicas), tmp_path)
    assert named(manifests, "Deployment", "mqtt-kafka-sync-ingest")["spec"]["replicas"] == replicas
    values = _sharded(autoscaling={"enabled": True, "minReplicas": 1, "maxReplicas": 3})
    hpa = named(_render_values(values, tmp_path), "HorizontalPodAutoscaler", "mqtt-kafka-sync-ingest")
    assert hpa["spec"]["maxReplicas"] == 3


def test_sharded_sessions_belong_to_shards_not_to_pods(tmp_path: Path) -> None:
    """The chart gives no per-pod client id in the sharded mode, and accepts a fixed one there."""
    for config in (SHARDED, {**SHARDED, "mqtt.client.id": "bridge"}):
        manifests = _render_values({"connectors": [{"name": "s", "config": config}]}, tmp_path)
        text = named(manifests, "ConfigMap", "mqtt-kafka-sync-connectors")["data"]["s.json"]
        assert "POD_NAME" not in text
        assert yaml.safe_load(text)["config"].get("mqtt.client.id") == config.get("mqtt.client.id")


def test_sharded_mode_without_shards_is_refused(tmp_path: Path) -> None:
    config = {k: v for k, v in SHARDED.items() if k != "mqtt.shards"}
    error = template_error({"connectors": [{"name": "s", "config": config}]}, tmp_path)
    assert "mqtt.subscription=sharded needs mqtt.shards" in error


def test_a_grace_period_shorter_than_the_drain_is_refused(tmp_path: Path) -> None:
    error = template_error({"drainTimeoutSeconds": 60, "terminationGracePeriodSeconds": 60}, tmp_path)
    assert "terminationGracePeriodSeconds (60) must be at least drainTimeoutSeconds (60) + 10" in error


def test_one_fixed_mqtt_client_id_for_several_pods_is_refused(tmp_path: Path) -> None:
    config = {**SHARDED, "mqtt.client.id": "bridge"}
    del config["mqtt.subscription"], config["mqtt.shards"]
    error = template_error(
        {"connectors": [{"name": "c", "config": config}], "ingest": {"replicas": 2}}, tmp_path
    )
    assert 'mqtt.client.id "bridge" is the same in every pod' in error
    config["mqtt.client.id"] = "bridge-${env:POD_NAME}"
    values = {"connectors": [{"name": "c", "config": config}], "ingest": {"replicas": 2}}
    assert named(_render_values(values, tmp_path), "Deployment", "mqtt-kafka-sync-ingest")


def test_an_unknown_connector_class_is_refused(tmp_path: Path) -> None:
    error = template_error({"connectors": [{"name": "x", "config": {"connector.class": "Mqtt"}}]}, tmp_path)
    assert 'connector.class "Mqtt" is not one of mqtt_kafka_sync.MqttSourceConnector' in error


def test_no_connectors_is_refused(tmp_path: Path) -> None:
    assert "connectors: none given" in template_error({"connectors": []}, tmp_path)
    assert CHART.is_dir()
