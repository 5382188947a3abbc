"""compose/Dockerfile: a small multi-stage image run as a non-root user with `mqtt-kafka-sync` as its
entrypoint and the OCI labels; what the chart relies on (numeric user for runAsNonRoot, /tmp as the
one writable place, the metrics port); and the compose files build and run it the same way."""

from __future__ import annotations

import tomllib
from typing import Any

import yaml

from tests.unit.deploy.chart import CHART, REPO, render
from tests.unit.deploy.dockerfile import stages

OCI_LABELS = {"title", "description", "version", "revision", "created", "licenses", "documentation"}


def test_the_image_is_multi_stage_non_root_with_the_oci_labels() -> None:
    build, final = stages()
    assert build.name == "build" and len(build.all("RUN")) >= 2
    assert not final.all("RUN"), "the final stage only copies the built virtualenv"
    assert final.all("COPY") == ["--from=build /opt/mqtt-kafka-sync /opt/mqtt-kafka-sync"]
    user, _, group = final.all("USER")[-1].partition(":")
    assert user.isdigit() and int(user) != 0 and group.isdigit()  # numeric: runAsNonRoot can check it
    assert final.exec_form("ENTRYPOINT") == ["mqtt-kafka-sync"]
    labels = final.labels()
    assert {k.removeprefix("org.opencontainers.image.") for k in labels} == OCI_LABELS
    version = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]
    assert f"ARG VERSION={version}" in {f"ARG {a}" for a in final.all("ARG")}
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == version


def test_the_chart_runs_the_image_as_its_user_with_its_writable_place() -> None:
    final = stages()[-1]
    user, _, group = final.all("USER")[-1].partition(":")
    env = final.env()
    assert env["TMPDIR"] == env["HOME"] == final.all("WORKDIR")[-1]
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    for deployment in (m for m in render() if m["kind"] == "Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert spec["securityContext"]["runAsUser"] == int(user)
        assert spec["securityContext"]["runAsGroup"] == int(group)
        (container,) = spec["containers"]
        assert container["workingDir"] == env["TMPDIR"]
        assert "command" not in container  # the image's entrypoint runs


def _worker(compose_file: str) -> dict[str, Any]:
    services = yaml.safe_load((REPO / "compose" / compose_file).read_text())["services"]
    worker: dict[str, Any] = services["worker"]
    return worker


def test_the_compose_files_build_this_image_and_run_it_read_only() -> None:
    for compose_file in ("docker-compose.yml", "docker-compose.secure.yml"):
        worker = _worker(compose_file)
        assert worker["build"] == {"context": "..", "dockerfile": "compose/Dockerfile"}
        assert worker["read_only"] is True and worker["tmpfs"] == ["/tmp"]
        assert worker["command"][0] == "run"  # the entrypoint is mqtt-kafka-sync
