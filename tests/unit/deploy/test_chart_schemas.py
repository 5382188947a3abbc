"""``helm lint`` is clean, and every example renders into manifests that Kubernetes 1.30 and 1.33
accept: strict schemas (no unknown field) from kubernetes-validate's bundled copies of the API."""

from __future__ import annotations

from typing import Any

import kubernetes_validate
import pytest

from tests.unit.deploy.chart import CHART, EXAMPLE_NAMES, render, run_helm, values_args

KUBERNETES_VERSIONS = ("1.30.0", "1.33.0")
# Custom resources, whose schemas come with their operators, not with Kubernetes: checked by
# tests/unit/deploy/test_chart_product.py against what the product and the alert file say.
CUSTOM_KINDS = {
    ("monitoring.coreos.com/v1", "PodMonitor"),
    ("monitoring.coreos.com/v1", "PrometheusRule"),
    ("keda.sh/v1alpha1", "ScaledObject"),
    ("keda.sh/v1alpha1", "TriggerAuthentication"),
}


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_helm_lint_is_clean(example: str) -> None:
    done = run_helm("lint", "--strict", str(CHART), *values_args(example))
    assert done.returncode == 0, done.stdout + done.stderr
    noisy = [line for line in done.stdout.splitlines() if "[WARNING]" in line or "[ERROR]" in line]
    assert not noisy, done.stdout


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_every_manifest_validates_strictly_against_the_kubernetes_schema(example: str, version: str) -> None:
    manifests = render(example, "--kube-version", version)
    assert manifests
    checked: list[str] = []
    for manifest in manifests:
        key = (manifest["apiVersion"], manifest["kind"])
        if key in CUSTOM_KINDS:
            continue
        try:
            validated = kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            pytest.fail(
                f"{example}: {_name(manifest)} is not valid Kubernetes {version}: {path}: {exc.message}"
            )
        assert validated == version.rsplit(".", 1)[0]  # the bundled schema of that very version
        checked.append(manifest["kind"])
    assert {"Deployment", "ConfigMap", "PodDisruptionBudget", "ServiceAccount"} <= set(checked)


def test_the_examples_render_every_template() -> None:
    kinds = {(m["apiVersion"], m["kind"]) for example in EXAMPLE_NAMES for m in render(example)}
    assert kinds >= CUSTOM_KINDS
    assert ("autoscaling/v2", "HorizontalPodAutoscaler") in kinds


def test_the_chart_refuses_kubernetes_older_than_1_30() -> None:
    done = run_helm("template", "x", str(CHART), "--kube-version", "1.29.0")
    assert done.returncode != 0
    assert "kubeVersion" in done.stderr or "1.30" in done.stderr, done.stderr


def _name(manifest: dict[str, Any]) -> str:
    return f"{manifest['kind']} {manifest['metadata']['name']}"
