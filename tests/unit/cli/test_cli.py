"""The command line rejects bad config files with every problem listed and no stack trace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mqtt_kafka_sync.cli.main import main

REPO = Path(__file__).resolve().parents[3]


def _bad_config(tmp_path: Path) -> Path:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "name": "bad",
                "config": {
                    "connector.class": "mqtt_kafka_sync.MqttSourceConnector",
                    "mqtt.sever.uri": "tcp://127.0.0.1:1883",
                    "mqtt.shared.group": "g",
                    "mqtt.qos": "3",
                    "kafka.bootstrap.servers": "127.0.0.1:9092",
                    "routes": "t",
                    "routes.t.mqtt.topic": "plants/{plant}/telemetry",
                    "routes.t.kafka.topic": "site-{site}",
                },
            }
        )
    )
    return path


def test_validate_accepts_the_shipped_examples(capsys: pytest.CaptureFixture[str]) -> None:
    examples = sorted(str(p) for p in (REPO / "connectors").glob("example-*"))
    assert examples
    for example in examples:  # one connector in two formats: same name, so one at a time
        assert main(["validate", example]) == 0
        assert "1 file(s) OK" in capsys.readouterr().out


def test_validate_lists_every_problem_with_key_and_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["validate", str(_bad_config(tmp_path))]) == 1
    err = capsys.readouterr().err
    assert "mqtt.sever.uri" in err and "did you mean 'mqtt.server.uri'" in err
    assert "mqtt.server.uri: is required" in err
    assert "mqtt.qos" in err
    assert "routes.t.kafka.topic" in err and "site" in err
    assert "Traceback" not in err


def test_run_with_a_bad_config_exits_2_without_a_stack_trace(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "mqtt_kafka_sync", "run", str(_bad_config(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2
    assert "did you mean 'mqtt.server.uri'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_run_with_a_missing_file_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(tmp_path / "nope.json")]) == 2
    err = capsys.readouterr().err
    assert "nope.json" in err and "Traceback" not in err
