"""`make demo`, the README's first command, as a user runs it: the local stack on its default ports,
the example connector, simulated devices, live progress; Ctrl-C stops the devices, lets the worker
catch up, and the report reads the Kafka topic back: nothing lost, nothing duplicated."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def test_the_demo_moves_messages_and_stops_cleanly_on_ctrl_c() -> None:
    demo = subprocess.Popen(
        [sys.executable, "-m", "mqtt_kafka_sync", "demo", "--devices", "50"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(demo.stdout or ()), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 180
        while not any("kafka out" in line and "acked" in line and " 0 (" not in line for line in lines):
            assert demo.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "no progress within 180 s:\n" + "".join(lines)
            time.sleep(0.5)
        time.sleep(5)
        demo.send_signal(signal.SIGINT)
        demo.wait(120)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait(10)
        reader.join(10)
        if demo.stdout is not None:
            demo.stdout.close()
    out = "".join(lines)
    assert demo.returncode == 0, out
    assert "stopping devices, letting the worker catch up" in out, out
    report = next(line for line in lines if line.startswith("kafka:"))
    assert " lost=0 " in report and " duplicated=0 " in report, report
    assert "local stack stopped" in out or "local stack already running" in out, out  # left as it was found
