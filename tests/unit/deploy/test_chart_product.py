"""The rendered manifests against the product itself: the container's arguments parsed by `run`'s own
parser, the probe paths asked of the real metrics server, the connector files loaded by the real
loader from where the pods mount them, the alert rules compared with compose/prometheus/alerts.yml."""

from __future__ import annotations

import argparse
import contextlib
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml

from mqtt_kafka_sync.cli.main import build_parser
from mqtt_kafka_sync.config.loader import check_files
from mqtt_kafka_sync.config.model import RELAY_CONNECTOR_CLASS, SOURCE_CONNECTOR_CLASS
from mqtt_kafka_sync.devstack import compose_material
from mqtt_kafka_sync.telemetry.http import MetricsServer
from tests.unit.deploy.chart import CHART, EXAMPLE_NAMES, REPO, Manifest, named, of_kind, render

ROLES = {SOURCE_CONNECTOR_CLASS: "ingest", RELAY_CONNECTOR_CLASS: "relay"}


def _container(deployment: Manifest) -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _run_args(container: dict[str, Any]) -> argparse.Namespace:
    """The container's arguments as `mqtt-kafka-sync` (the image's entrypoint) parses them."""
    args = build_parser().parse_args(container["args"])
    assert args.command == "run"
    return args


def _mounts(deployment: Manifest) -> dict[str, dict[str, Any]]:
    """mountPath -> the volume mounted there."""
    spec = deployment["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    return {m["mountPath"]: volumes[m["name"]] for m in _container(deployment)["volumeMounts"]}


def _under(path: str, directory: str) -> bool:
    return PurePosixPath(directory) in PurePosixPath(path).parents


def _deployments(example: str) -> list[tuple[Manifest, list[Manifest]]]:
    manifests = render(example)
    return [(d, manifests) for d in of_kind(manifests, "Deployment")]


@contextlib.contextmanager
def _serving() -> Iterator[MetricsServer]:
    """The product's metrics server on a free loopback port, its probes answering LIVE and READY."""
    server = MetricsServer(
        "127.0.0.1",
        0,
        scrape=lambda: b"",
        readiness=lambda: (True, "READY\n"),
        liveness=lambda: (True, "LIVE\n"),
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_probes_ask_the_metrics_port_that_run_serves_for_the_paths_it_answers(example: str) -> None:
    with _serving() as server:
        for deployment, _ in _deployments(example):
            container = _container(deployment)
            args = _run_args(container)
            ports = {p["name"]: p["containerPort"] for p in container["ports"]}
            for probe, answer in (("livenessProbe", "LIVE\n"), ("readinessProbe", "READY\n")):
                get = container[probe]["httpGet"]
                assert ports[get["port"]] == args.metrics_port, f"{probe}: not the port of --metrics-port"
                url = f"http://127.0.0.1:{server.port}{get['path']}"
                with urllib.request.urlopen(url, timeout=5) as response:
                    assert response.read().decode() == answer, f"{probe} {get['path']} is not what run serves"


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_the_drain_fits_in_the_grace_period_and_every_write_lands_in_the_emptydir(example: str) -> None:
    for deployment, _ in _deployments(example):
        spec = deployment["spec"]["template"]["spec"]
        container = _container(deployment)
        args = _run_args(container)
        assert args.drain_timeout + 10 <= spec["terminationGracePeriodSeconds"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
        assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
        mounts = _mounts(deployment)
        writable = {path for path, volume in mounts.items() if "emptyDir" in volume}
        work = container["workingDir"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert work in writable and env["TMPDIR"] == work and env["HOME"] == work
        assert env["PYTHONDONTWRITEBYTECODE"] == "1"
        if args.status_file is not None:
            assert _under(str(args.status_file), work)
        assert writable == {work}  # the counters shared with the tasks are anonymous memory, no /dev/shm


@pytest.fixture(scope="module")
def secret_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """What the Secrets of compose/helm/examples/secure.yaml hold (the `kubectl create secret` lines at
    its top), by file name, made from the secured compose stack's throwaway material."""
    material = tmp_path_factory.mktemp("material") / "m"
    assert compose_material.main([str(material)]) == 0
    secrets = (material / "bridge-secrets.properties").read_text()
    (key_password,) = re.findall(r"^mqtt\.ssl\.key\.password=(.*)$", secrets, re.MULTILINE)
    return {
        "ca.pem": (material / "ca.pem").read_bytes(),
        "bridge.pem": (material / "bridge.pem").read_bytes(),
        "bridge.key": (material / "bridge-encrypted.key").read_bytes(),
        "key-password": key_password.encode(),
    }


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_run_reads_its_connector_files_where_the_configmap_is_mounted(
    example: str, tmp_path: Path, secret_files: dict[str, bytes]
) -> None:
    """Each Deployment's `run` arguments name files of the ConfigMap volume mounted there; those files,
    with the pod's environment and its Secrets where the pod mounts them, pass the product's own
    validation: every `${env:}` is set, every `${file:}` and `*.location` is in a mounted Secret."""
    seen_roles = set()
    for deployment, manifests in _deployments(example):
        container = _container(deployment)
        role = deployment["metadata"]["labels"]["app.kubernetes.io/component"]
        mounts = _mounts(deployment)
        # The pod's Secret mounts, each standing as a directory here; the connector files are read with
        # their mount paths mapped onto those directories (as the pod's file system would show them).
        secret_dirs = {
            path: tmp_path / role / volume["secret"]["secretName"]
            for path, volume in mounts.items()
            if "secret" in volume
        }
        files = []
        for path in _run_args(container).configs:
            name = PurePosixPath(path).name
            volume = mounts[str(PurePosixPath(path).parent)]["configMap"]
            assert {"key": name, "path": name} in volume["items"]
            text = named(manifests, "ConfigMap", volume["name"])["data"][name]
            assert ROLES[yaml.safe_load(text)["config"]["connector.class"]] == role
            for mount_path, directory in secret_dirs.items():
                for referenced in re.findall(re.escape(mount_path) + r"/([^\s:}\"]+)", text):
                    directory.mkdir(parents=True, exist_ok=True)
                    assert referenced in secret_files, (
                        f"{example}: {mount_path}/{referenced} is in no example Secret"
                    )
                    (directory / referenced).write_bytes(secret_files[referenced])
                text = text.replace(mount_path + "/", f"{directory}/")
            for key, value in yaml.safe_load(text)["config"].items():
                if key.endswith(".location"):
                    assert any(_under(value, str(d)) for d in secret_dirs.values()), (
                        f"{key}={value}: no Secret"
                    )
            files.append(tmp_path / f"{role}-{name}")
            files[-1].write_text(text)
        seen_roles.add(role)
        env = {e["name"]: "from-a-secret" for e in container["env"]}
        env["POD_NAME"] = "mqtt-kafka-sync-ingest-7d9f8-x2x4q"
        problems = check_files(files, env)
        assert not problems, "\n".join(map(str, problems))
    assert seen_roles == {"ingest", "relay"}


def test_every_alert_rule_is_the_one_in_compose_prometheus_alerts() -> None:
    compose_rules = yaml.safe_load((REPO / "compose" / "prometheus" / "alerts.yml").read_text())
    rule = of_kind(render("monitored"), "PrometheusRule")
    assert len(rule) == 1
    assert rule[0]["spec"]["groups"] == compose_rules["groups"]
    assert (CHART / "files" / "alerts.yml").read_bytes() == (
        REPO / "compose/prometheus/alerts.yml"
    ).read_bytes()


def test_the_podmonitor_gives_the_job_label_the_alerts_ask_for() -> None:
    manifests = render("monitored")
    monitor = of_kind(manifests, "PodMonitor")[0]["spec"]
    alerts = (REPO / "compose" / "prometheus" / "alerts.yml").read_text()
    jobs = set(re.findall(r'job="([^"]+)"', alerts))
    for deployment in of_kind(manifests, "Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert {labels[monitor["jobLabel"]]} == jobs
        assert monitor["selector"]["matchLabels"].items() <= labels.items()
        assert {e["port"] for e in monitor["podMetricsEndpoints"]} == {"metrics"}


def test_the_dashboards_are_compose_grafana_dashboards() -> None:
    dashboards = REPO / "compose" / "grafana" / "dashboards"
    maps = [
        m for m in of_kind(render("monitored"), "ConfigMap") if "grafana_dashboard" in m["metadata"]["labels"]
    ]
    shipped = {name: text for m in maps for name, text in m["data"].items()}
    assert shipped == {p.name: p.read_text() for p in sorted(dashboards.glob("*.json"))}
    for path in dashboards.glob("*.json"):
        assert (CHART / "files" / "dashboards" / path.name).read_bytes() == path.read_bytes()


def test_relays_scale_on_their_groups_lag_and_ingest_workers_on_cpu() -> None:
    manifests = render("monitored")
    relay_connectors = [
        yaml.safe_load(text)
        for m in of_kind(manifests, "ConfigMap")
        for text in m["data"].values()
        if RELAY_CONNECTOR_CLASS in text
    ]
    triggers = of_kind(manifests, "ScaledObject")[0]["spec"]["triggers"]
    assert {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in triggers} == {
        (c["config"]["kafka.group.id"], c["config"]["routes.commands.kafka.topic"]) for c in relay_connectors
    }
    hpa = of_kind(manifests, "HorizontalPodAutoscaler")[0]["spec"]
    assert hpa["scaleTargetRef"]["name"].endswith("-ingest")
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]
    for deployment in of_kind(manifests, "Deployment"):
        assert "replicas" not in deployment["spec"]  # the autoscalers own it


def test_probing_a_path_run_does_not_serve_is_404() -> None:
    """The check above would pass for any path if the server answered everything alike."""
    with _serving() as server, pytest.raises(urllib.error.HTTPError) as caught:
        urllib.request.urlopen(f"http://127.0.0.1:{server.port}/health", timeout=5)
    assert caught.value.code == 404
    caught.value.close()
