"""Helpers for tests that run ``mqtt-kafka-sync replay`` as a process and kill it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path


def start_logged(command: list[str], log: Path, cwd: Path) -> subprocess.Popen[bytes]:
    """Start ``command`` in ``cwd`` with its stdout and stderr written to ``log``."""
    with log.open("w") as out:
        return subprocess.Popen(command, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)


def confirmed(checkpoint: Path) -> int:
    """Offsets the replay's checkpoint file says the target confirmed (0 before it exists)."""
    if not checkpoint.exists():
        return 0
    doc = json.loads(checkpoint.read_text())
    return sum(doc["next"][p] - doc["plan"]["ranges"][p][0] for p in doc["next"])


def kill_9_once_confirmed(
    proc: subprocess.Popen[bytes], checkpoint: Path, at_least: int, log: Path, timeout: float
) -> int:
    """SIGKILL ``proc`` once its checkpoint has ``at_least`` confirmed; returns how many it had."""
    try:
        deadline = time.monotonic() + timeout
        done = 0
        while time.monotonic() < deadline and done < at_least:
            assert proc.poll() is None, log.read_text()
            done = confirmed(checkpoint)
            time.sleep(0.1)
        assert done >= at_least, "the first replay made no progress"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        return done
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
