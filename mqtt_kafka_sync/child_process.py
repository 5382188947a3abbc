"""A child Python process, started without :mod:`multiprocessing`: no resource tracker in the tree.

``run`` starts children for its tasks, its config check and its lag reader; ``replay`` one for its
lag reader. Each must be a fresh interpreter (fork is unsafe: the parent has threads, librdkafka's
among them), which is what multiprocessing's spawn start method gives, but spawn also starts
multiprocessing's resource tracker with the first child: one more interpreter, 12.8 MB resident for
the whole run (docs/benchmarks.md, "Memory of `run`"). So :func:`start_child` starts the child with
:mod:`subprocess` (fork and exec of ``sys.executable`` in C, safe with threads) and a ``-c``
bootstrap that reads, from a pipe the child inherits, the parent's ``sys.path`` (so a test whose
``sys.path`` differs from the interpreter's default still finds its modules) and then the pickled
``(target, args, kwargs)``, and calls the target. The name is the child's last argument (``ps``
shows it) and its ``processName`` in log lines. stdin is ``/dev/null``; stdout and stderr are the
parent's. A target that returns exits 0; ``sys.exit(n)`` exits ``n``; an exception prints its
traceback and exits 1; a signal gives a negative :attr:`ChildProcess.exitcode`, as
``multiprocessing.Process`` does.

File descriptors reach the child only when named in ``pass_fds`` (everything else is closed), at
the same numbers: a :class:`~mqtt_kafka_sync.shared_block.SharedBlock` pickles as its fd, and
:func:`channel` makes a :class:`~multiprocessing.connection.Connection` pair whose child end
crosses as an fd (a ``Connection`` is plain pipe or socket I/O: it needs no resource tracker).
"""

from __future__ import annotations

import contextlib
import os
import pickle
import socket
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, BinaryIO

_BOOTSTRAP = (
    "import os, pickle, sys\n"
    "boot = os.fdopen(int(sys.argv[1]), 'rb')\n"
    "sys.path[:] = pickle.load(boot)\n"
    "from mqtt_kafka_sync.child_process import _child_main\n"
    "_child_main(boot, sys.argv[2])\n"
)


def _child_main(boot: BinaryIO, name: str) -> None:
    """In the child: read the target and its arguments, close the pipe, run it."""
    target, args, kwargs = pickle.load(boot)  # noqa: S301 - written by our parent, through our pipe
    boot.close()
    import multiprocessing  # noqa: PLC0415 - only for the name logging shows; starts nothing

    multiprocessing.current_process().name = name
    target(*args, **kwargs)


class ChildProcess:
    """A started child: what the callers used of ``multiprocessing.Process``."""

    def __init__(self, popen: subprocess.Popen[bytes], name: str) -> None:
        self._popen = popen
        self.name = name
        self.pid = popen.pid

    @property
    def exitcode(self) -> int | None:
        """None while it runs; its exit code, or ``-N`` when signal ``N`` ended it."""
        return self._popen.poll()

    def is_alive(self) -> bool:
        return self._popen.poll() is None

    def terminate(self) -> None:
        """SIGTERM (nothing if it has ended)."""
        self._popen.terminate()

    def kill(self) -> None:
        """SIGKILL (nothing if it has ended)."""
        self._popen.kill()

    def join(self, timeout: float | None = None) -> None:
        """Wait until it ends, at most ``timeout`` seconds (then return with it still running)."""
        with contextlib.suppress(subprocess.TimeoutExpired):
            self._popen.wait(timeout)

    def close(self) -> None:
        """Reap it if it has ended (a running child is left running)."""
        self._popen.poll()


def start_child(
    target: Callable[..., object],
    *,
    name: str,
    args: Iterable[object] = (),
    kwargs: Mapping[str, Any] | None = None,
    pass_fds: Iterable[int] = (),
) -> ChildProcess:
    """Start ``target(*args, **kwargs)`` in a fresh interpreter; ``target`` and the arguments must
    pickle, and every fd they carry must be in ``pass_fds``. Raises :class:`OSError` when the
    process cannot be started, :class:`pickle.PicklingError` (before starting) when they do not pickle.
    """
    payload = pickle.dumps(list(sys.path)) + pickle.dumps((target, tuple(args), dict(kwargs or {})))
    read_end, write_end = os.pipe()
    try:
        popen = subprocess.Popen(
            [sys.executable, "-c", _BOOTSTRAP, str(read_end), name],
            stdin=subprocess.DEVNULL,
            pass_fds=(read_end, *pass_fds),
        )
    except BaseException:
        os.close(write_end)
        raise
    finally:
        os.close(read_end)
    with os.fdopen(write_end, "wb") as boot, contextlib.suppress(BrokenPipeError):
        boot.write(payload)  # a child that died before reading: its exit code tells
    return ChildProcess(popen, name)


@dataclass(frozen=True)
class ChildEnd:
    """The child's end of a :func:`channel`: pass :attr:`fd` in ``pass_fds`` and this object in the
    arguments; the child calls :meth:`open`. The parent calls :meth:`close` once the child started."""

    fd: int
    readable: bool

    def open(self) -> Connection:
        return Connection(self.fd, readable=self.readable, writable=True)

    def close(self) -> None:
        os.close(self.fd)


def channel(*, duplex: bool) -> tuple[Connection, ChildEnd]:
    """A connection to a child: (the parent's end, the child's end). Without ``duplex`` the child
    only sends and the parent only receives (a pipe); with it both do (a socket pair)."""
    if duplex:
        ours, theirs = socket.socketpair()
        return Connection(ours.detach()), ChildEnd(theirs.detach(), readable=True)
    read_end, write_end = os.pipe()
    return Connection(read_end, writable=False), ChildEnd(write_end, readable=False)
