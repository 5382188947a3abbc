"""The child launcher without multiprocessing: arguments, exit codes, names, pipes, no resource tracker."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from pathlib import Path

import pytest

from mqtt_kafka_sync import child_process
from mqtt_kafka_sync.child_process import ChildEnd, channel, start_child, start_with_channel


def _answer(end: ChildEnd, value: object, *, keyword: str) -> None:
    conn = end.open()
    conn.send((value, keyword, sys.argv[2], Path(f"/proc/{os.getpid()}/cmdline").read_bytes()))
    conn.close()


def _echo_twice(end: ChildEnd) -> None:
    conn = end.open()
    while (request := conn.recv()) is not None:
        conn.send(request * 2)


def _add(a: int, b: int, end: ChildEnd) -> None:
    end.open().send(a + b)


def _fail() -> None:
    raise RuntimeError("boom")


def _sleep() -> None:
    time.sleep(60)


def _log_name(end: ChildEnd) -> None:
    record = logging.getLogger("x").makeRecord("x", logging.INFO, __file__, 1, "m", (), None)
    end.open().send((record.processName, "multiprocessing" in sys.modules))


def test_a_child_gets_its_arguments_and_answers_through_a_pipe() -> None:
    reader, writer = channel(duplex=False)
    child = start_child(
        _answer, name="answer-1", args=(writer, [1, "two"]), kwargs={"keyword": "kw"}, pass_fds=[writer.fd]
    )
    writer.close()
    value, keyword, name, cmdline = reader.recv()
    child.join(10)
    assert (value, keyword, name) == ([1, "two"], "kw", "answer-1")
    assert child.exitcode == 0 and not child.is_alive()
    assert cmdline.split(b"\0")[-2] == b"answer-1"  # what ps shows
    assert b"multiprocessing" not in cmdline and b"resource_tracker" not in cmdline


def test_a_duplex_channel_carries_requests_and_answers() -> None:
    ours, theirs = channel(duplex=True)
    child = start_child(_echo_twice, name="echo", args=(theirs,), pass_fds=[theirs.fd])
    theirs.close()
    ours.send(21)
    assert ours.poll(10)
    assert ours.recv() == 42
    ours.send(None)
    child.join(10)
    assert child.exitcode == 0


def test_start_with_channel_hands_the_child_its_end_last_and_keeps_ours() -> None:
    child, ours = start_with_channel(_add, name="add", args=(2, 3), duplex=False)
    assert ours.recv() == 5
    child.join(10)
    assert child.exitcode == 0
    ours.close()


def test_start_with_channel_closes_both_ends_when_the_child_cannot_start(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    fds_before = set(os.listdir("/proc/self/fd"))

    def refuse(*_args: object, **_kwargs: object) -> None:
        raise OSError(24, "Too many open files")

    monkeypatch.setattr(child_process, "start_child", refuse)
    with pytest.raises(OSError, match="Too many open files"):
        start_with_channel(_add, name="add", args=(2, 3), duplex=True)
    assert set(os.listdir("/proc/self/fd")) == fds_before


def test_the_child_s_log_lines_carry_its_name() -> None:
    reader, writer = channel(duplex=False)
    child = start_child(_log_name, name="lag-reader", args=(writer,), pass_fds=[writer.fd])
    writer.close()
    child.join(10)
    assert reader.recv() == ("lag-reader", False)  # named without importing multiprocessing


def test_an_exception_exits_1_with_its_traceback_on_stderr(capfd: pytest.CaptureFixture[str]) -> None:
    child = start_child(_fail, name="failing")
    child.join(30)
    assert child.exitcode == 1
    err = capfd.readouterr().err
    assert "Traceback" in err and "RuntimeError: boom" in err


def test_a_signal_is_a_negative_exit_code_and_join_returns_at_its_timeout() -> None:
    child = start_child(_sleep, name="sleeper")
    start = time.monotonic()
    child.join(0.2)
    assert child.is_alive() and child.exitcode is None
    assert time.monotonic() - start < 5
    child.terminate()
    child.join(10)
    assert child.exitcode == -signal.SIGTERM
    child.kill()  # ended: nothing happens
    child.close()
    assert child.exitcode == -signal.SIGTERM


def test_a_killed_child_says_sigkill() -> None:
    child = start_child(_sleep, name="sleeper")
    child.kill()
    child.join(10)
    assert child.exitcode == -signal.SIGKILL


def _send_big(end: ChildEnd, size: int) -> None:
    end.open().send(b"x" * size)


def test_a_message_larger_than_the_pipe_arrives_whole_then_eof() -> None:
    reader, writer = channel(duplex=False)
    child = start_child(_send_big, name="big", args=(writer, 3_000_000), pass_fds=[writer.fd])
    writer.close()
    assert reader.poll(30)
    assert reader.recv() == b"x" * 3_000_000
    child.join(10)
    assert reader.poll(0)  # the end closed: recv would not block
    with pytest.raises(EOFError):
        reader.recv()
    reader.close()
    with pytest.raises(OSError, match="closed"):
        reader.recv()
