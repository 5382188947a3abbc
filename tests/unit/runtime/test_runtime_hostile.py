"""The supervisor and task processes under hostile conditions: a full disk, no memory for the shared
blocks, a thread that dies. None of them may stop supervision or leave a half-alive task."""

from __future__ import annotations

import errno
import logging
import os
import threading
from pathlib import Path
from typing import Any

import pytest

from mqtt_kafka_sync.cli.main import main
from mqtt_kafka_sync.config.loader import load_connector
from mqtt_kafka_sync.runtime import supervisor as supervisor_module
from mqtt_kafka_sync.runtime import task_process
from mqtt_kafka_sync.runtime.supervisor import SharedMemoryError, Supervisor
from tests.unit.config.test_config import _write


def _supervisor(tmp_path: Path) -> Supervisor:
    return Supervisor([load_connector(_write(tmp_path, {}), {})])


def test_a_status_file_on_a_full_disk_is_logged_once_and_written_again_later(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    supervisor = _supervisor(tmp_path)
    status = tmp_path / "status.json"
    (tmp_path / "status.json.tmp").symlink_to("/dev/full")  # every write: ENOSPC
    with caplog.at_level(logging.WARNING, logger=supervisor_module.__name__):
        assert supervisor.write_status(status) is False
        (tmp_path / "status.json.tmp").unlink(missing_ok=True)
        (tmp_path / "status.json.tmp").symlink_to("/dev/full")
        assert supervisor.write_status(status) is False  # still full: no second line
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert len(errors) == 1 and "No space left on device" in errors[0].getMessage()
        (tmp_path / "status.json.tmp").unlink(missing_ok=True)  # space again
        assert supervisor.write_status(status) is True
    assert '"tasks"' in status.read_text()
    assert any("written again" in r.getMessage() for r in caplog.records)


def test_no_memory_for_the_shared_blocks_is_a_clear_error_not_a_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def no_memory(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.ENOMEM, os.strerror(errno.ENOMEM))

    monkeypatch.setattr(os, "memfd_create", no_memory)
    with pytest.raises(SharedMemoryError, match="memory limit"):
        _supervisor(tmp_path)
    assert main(["run", str(_write(tmp_path, {})), "--metrics-port", "0"]) == 1
    err = capsys.readouterr().err
    assert "Cannot allocate memory" in err and "memory limit" in err
    assert "Traceback" not in err


def test_a_thread_that_dies_ends_the_task_process(monkeypatch: pytest.MonkeyPatch) -> None:
    exits: list[int] = []
    monkeypatch.setattr(os, "_exit", exits.append)  # the task process calls os._exit
    monkeypatch.setattr(threading, "excepthook", task_process._exit_on_thread_crash)

    def network_loop() -> None:
        raise RuntimeError("librdkafka raised where nobody expected it")

    thread = threading.Thread(target=network_loop, name="mqtt-task-0")
    thread.start()
    thread.join()
    assert exits == [task_process.THREAD_CRASH_EXIT_CODE]
