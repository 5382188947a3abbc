"""One broker process of the local stack: spawned detached, remembered in a pid file, stopped politely.

A :class:`BrokerProcess` started by this Python process keeps its ``Popen`` and reaps it; one started
by an earlier ``stack up`` is found again through its pid file, and is only trusted while its command
line still names our config file (pids get reused).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from mqtt_kafka_sync.errors import StackError

logger = logging.getLogger(__name__)

TAIL_LINES = 20


def tail(paths: Sequence[Path], lines: int = TAIL_LINES) -> str:
    """The last ``lines`` lines of the given log files, oldest file first, as one string."""
    collected: list[str] = []
    for path in paths:
        with contextlib.suppress(OSError):
            collected += path.read_text(errors="replace").splitlines()
    return "\n".join(collected[-lines:])


class BrokerProcess:
    """A long-running child with a name, an argv, a pid file and log files.

    ``marker`` is a string that must appear in the process's command line (a config path) for a pid
    from the pid file to count as ours.
    """

    def __init__(
        self, name: str, *, pid_file: Path, out_file: Path, marker: str, logs: Sequence[Path] = ()
    ) -> None:
        self.name = name
        self.pid_file = pid_file
        self.out_file = out_file
        self.marker = marker
        self.logs = (*logs, out_file)
        self._popen: subprocess.Popen[bytes] | None = None

    @classmethod
    def under(cls, root: Path, name: str, *, marker: str, logs: Sequence[Path] = ()) -> BrokerProcess:
        """The broker ``name`` whose pid and output files are ``<root>/<name>.pid`` and ``.out``."""
        return cls(
            name, pid_file=root / f"{name}.pid", out_file=root / f"{name}.out", marker=marker, logs=logs
        )

    @property
    def pid(self) -> int | None:
        """The pid of our running process, or None."""
        if self._popen is not None:
            if self._popen.poll() is None:
                return self._popen.pid
            self._popen = None
        try:
            pid = int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _is_ours(pid, self.marker) else None

    def is_running(self) -> bool:
        return self.pid is not None

    def spawn(self, argv: Sequence[str], *, cwd: Path) -> None:
        """Start ``argv`` in its own session (it outlives us), output appended to ``out_file``."""
        self.out_file.parent.mkdir(parents=True, exist_ok=True)
        with self.out_file.open("ab") as out:
            self._popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pid_file.write_text(f"{self._popen.pid}\n")

    def wait_ready(self, probe: Callable[[], bool], *, timeout: float, what: str) -> None:
        """Call ``probe`` until it answers True; fail early if the process exits, late on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            if not self.is_running():
                raise StackError(
                    f"{self.name} exited during startup; last lines of its logs:\n{tail(self.logs)}"
                )
            if probe():
                return
            if time.monotonic() > deadline:
                raise StackError(
                    f"{self.name} did not become ready ({what}) within {timeout:.0f}s; "
                    f"last lines of its logs:\n{tail(self.logs)}"
                )
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM, wait up to ``timeout`` seconds, then SIGKILL. No-op when not running."""
        pid = self.pid
        if pid is not None:
            self._signal(pid, signal.SIGTERM)
            if not self._wait_gone(pid, timeout):
                logger.warning("%s (pid %s) ignored SIGTERM for %.0fs; killing it", self.name, pid, timeout)
                self._signal(pid, signal.SIGKILL)
                self._wait_gone(pid, 10.0)
        self._forget()

    def kill(self) -> None:
        """SIGKILL at once: a crash, for fault-injection tests."""
        pid = self.pid
        if pid is not None:
            self._signal(pid, signal.SIGKILL)
            self._wait_gone(pid, 10.0)
        self._forget()

    def _signal(self, pid: int, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)

    def _wait_gone(self, pid: int, timeout: float) -> bool:
        if self._popen is not None:
            try:
                self._popen.wait(timeout)
            except subprocess.TimeoutExpired:
                return False
            return True
        deadline = time.monotonic() + timeout
        while _alive(pid):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.1)
        return True

    def _forget(self) -> None:
        self._popen = None
        self.pid_file.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        # A zombie has exited; only its parent has not collected it yet.
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_ours(pid: int, marker: str) -> bool:
    if not _alive(pid):
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return True  # no /proc: trust the pid file
    return marker in cmdline


class ManagedBroker:
    """What the local stack's brokers share: start is launch then wait until ready; stop, kill, logs.

    A broker class sets :attr:`process`, :attr:`READY_TIMEOUT`, :attr:`STOP_TIMEOUT` and
    :attr:`ready_what`, and implements :meth:`launch` and :meth:`is_ready`.
    """

    process: BrokerProcess
    READY_TIMEOUT = 60.0
    STOP_TIMEOUT = 30.0

    @property
    def ready_what(self) -> str:
        """What :meth:`wait_ready` waits for, for its error message."""
        raise NotImplementedError

    def launch(self) -> None:
        raise NotImplementedError

    def is_ready(self, timeout: float = 2.0) -> bool:
        raise NotImplementedError

    def is_running(self) -> bool:
        return self.process.is_running()

    def wait_ready(self, timeout: float | None = None) -> None:
        self.process.wait_ready(self.is_ready, timeout=timeout or self.READY_TIMEOUT, what=self.ready_what)

    def start(self, timeout: float | None = None) -> None:
        self.launch()
        self.wait_ready(timeout)

    def stop(self, timeout: float | None = None) -> None:
        """Graceful: SIGTERM, and SIGKILL after ``timeout``."""
        self.process.stop(timeout or self.STOP_TIMEOUT)

    def kill(self) -> None:
        """A crash: SIGKILL."""
        self.process.kill()

    def log_tail(self) -> str:
        return tail(self.process.logs)
