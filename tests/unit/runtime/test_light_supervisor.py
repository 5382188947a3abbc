"""The supervisor of ``run`` stays small: it checks the config files in a child process and imports
neither the Kafka, MQTT and Avro libraries nor the OpenTelemetry SDK where nothing needs them
(docs/benchmarks.md, "Memory of run")."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from mqtt_kafka_sync.cli.main import _runs
from mqtt_kafka_sync.config.loader import load_connectors
from mqtt_kafka_sync.errors import ConfigError
from mqtt_kafka_sync.runtime.checked_config import load_checked
from tests.unit.config.test_config import _write

HEAVY = ("confluent_kafka", "fastavro", "opentelemetry", "paho", "prometheus_client")


def test_the_supervisor_of_a_run_without_metrics_or_lag_imports_no_heavy_library() -> None:
    """What a ``run`` supervisor imports before its first task starts, in a fresh interpreter."""
    code = (
        "import sys\n"
        "from mqtt_kafka_sync.cli.main import build_parser\n"
        "build_parser(everything=False).parse_args(['run', 'x.json'])\n"
        "import mqtt_kafka_sync.runtime.checked_config, mqtt_kafka_sync.runtime.supervisor\n"
        f"print(' '.join(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.split() == []


def test_only_run_leaves_the_other_commands_out_of_the_parser() -> None:
    assert _runs(["run", "a.json"])
    assert _runs(["--log-level", "INFO", "run", "a.json"])
    assert _runs(["--log-level=DEBUG", "run", "a.json"])
    assert not _runs(["tail", "run"])
    assert not _runs(["--help"])
    assert not _runs([])


def test_the_config_checked_in_a_child_is_what_the_loader_gives(tmp_path: Path) -> None:
    path = _write(tmp_path, {})
    configs, warnings = load_checked([path], {})
    assert configs == load_connectors([path], {})
    assert warnings == []


def test_a_bad_file_checked_in_a_child_lists_its_problems(tmp_path: Path) -> None:
    path = _write(tmp_path, {"mqtt.server.uri": None, "tasks.max": "many"})
    with pytest.raises(ConfigError) as caught:
        load_checked([path], {})
    keys = {p.key for p in caught.value.problems}
    assert {"mqtt.server.uri", "tasks.max"} <= keys
