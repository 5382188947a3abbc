"""Runs ``mqtt-kafka-sync run`` as a real process for end-to-end tests, as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol


class Brokers(Protocol):
    @property
    def kafka_bootstrap(self) -> str: ...

    @property
    def mqtt_uri(self) -> str: ...


def write_source_config(
    path: Path, brokers: Brokers, *, name: str, root: str, topic: str, **extra: Any
) -> Path:
    """A source connector for ``<root>/plants/{plant}/devices/{device}/telemetry`` -> ``topic``."""
    config: dict[str, Any] = {
        "connector.class": "mqtt_kafka_sync.MqttSourceConnector",
        "tasks.max": "1",
        "mqtt.server.uri": brokers.mqtt_uri,
        "mqtt.shared.group": name,
        "mqtt.client.id": name,
        "mqtt.topics": f"{root}/#",
        "mqtt.takeover.delay.seconds": "2",
        "kafka.bootstrap.servers": brokers.kafka_bootstrap,
        "routes": "telemetry",
        "routes.telemetry.mqtt.topic": f"{root}/plants/{{plant}}/devices/{{device}}/telemetry",
        "routes.telemetry.kafka.topic": topic,
        "routes.telemetry.kafka.key": "{plant}.{device}",
        "routes.telemetry.value.format": "json",
        "errors.deadletterqueue.topic.name": f"{topic}-dlq",
    }
    config.update({k: str(v) for k, v in extra.items()})
    path.write_text(json.dumps({"name": name, "config": config}, indent=2))
    return path


class WorkerProcess:
    def __init__(
        self, config: Path | Sequence[Path], workdir: Path, label: str = "worker", *, metrics_port: int = 0
    ) -> None:
        """``config``: one connector file or several; ``metrics_port``: ``run --metrics-port`` (0: off)."""
        self.configs = [config] if isinstance(config, Path) else list(config)
        self.config = self.configs[0]
        self.metrics_port = metrics_port
        self.status_file = workdir / f"{label}.status.json"
        self.log_file = workdir / f"{label}.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.last_status: dict[str, Any] = {}

    def start(self) -> WorkerProcess:
        self.status_file.unlink(missing_ok=True)
        with self.log_file.open("ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "mqtt_kafka_sync",
                    "--log-level",
                    "INFO",
                    "run",
                    *(str(c) for c in self.configs),
                    "--metrics-port",
                    str(self.metrics_port),
                    "--metrics-host",
                    "127.0.0.1",
                    "--status-file",
                    str(self.status_file),
                    "--drain-timeout",
                    "20",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        return self

    def status(self) -> dict[str, Any]:
        with contextlib.suppress(FileNotFoundError, ValueError):
            self.last_status = json.loads(self.status_file.read_text())
        return self.last_status

    def totals(self) -> dict[str, int]:
        return dict(self.status().get("totals", {}))

    def wait_subscribed(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            code = self.proc.poll()
            assert code is None, f"worker exited early (exit code {code}):\n{self.log()}"
            tasks = self.status().get("tasks", [])
            if tasks and all(t["subscribed"] for t in tasks):
                return
            time.sleep(0.2)
        raise AssertionError(f"worker not subscribed after {timeout}s:\n{self.log()}")

    def wait_acked(self, count: int, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.totals().get("acked", 0) >= count:
                return True
            time.sleep(0.2)
        return False

    def task_pids(self) -> list[int]:
        return [t["pid"] for t in self.status().get("tasks", []) if t.get("pid")]

    def rss_bytes(self) -> int:
        """Resident memory of the supervisor and its task processes."""
        total = 0
        assert self.proc is not None
        for pid in [self.proc.pid, *self.task_pids()]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except FileNotFoundError:
                continue
        return total

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill9(self) -> None:
        """SIGKILL the supervisor; its task processes die with it (PR_SET_PDEATHSIG)."""
        assert self.proc is not None
        pids = self.task_pids()
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        for pid in pids:
            _wait_gone(pid, 10)

    def stop(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(f"worker did not stop within {timeout}s:\n{self.log()}") from None

    def log(self) -> str:
        return self.log_file.read_text(errors="replace")[-5000:] if self.log_file.exists() else ""


def _wait_gone(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError(f"task process {pid} survived its supervisor")
