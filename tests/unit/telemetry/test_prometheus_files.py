"""compose/prometheus: the alert rules and the config load in Prometheus's own checker.

promtool ships with Debian's prometheus package (scripts/install-system-deps.sh installs it); a
missing promtool fails the test, it never skips.
"""

from __future__ import annotations

import shutil
import subprocess

import pytest

from mqtt_kafka_sync.devstack.paths import repo_root

PROMETHEUS_DIR = repo_root() / "compose" / "prometheus"


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is missing: run scripts/install-system-deps.sh (Debian's prometheus)", pytrace=False
        )
    return subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)


def test_alert_rules_load() -> None:
    result = _promtool("check", "rules", str(PROMETHEUS_DIR / "alerts.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_prometheus_config_loads_with_its_rules() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_DIR / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
