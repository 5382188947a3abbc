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
:func:`channel` makes a :class:`Channel` pair (pickled objects over a pipe or a socket pair, what
the callers used of ``multiprocessing.connection.Connection``) whose child end crosses as an fd.
:func:`start_with_channel` does both: a channel, and a child given its end as its last argument.
Neither the parent nor the child imports :mod:`multiprocessing` (3 MB resident for
``multiprocessing.connection`` and what it imports): the child's log lines get its name from a log
record factory instead of ``multiprocessing.current_process()``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
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
    make_record = logging.getLogRecordFactory()

    def named(*record_args: Any, **record_kwargs: Any) -> logging.LogRecord:
        record = make_record(*record_args, **record_kwargs)
        record.processName = name
        return record

    logging.setLogRecordFactory(named)
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


_HEADER = struct.Struct("!Q")


class Channel:
    """Pickled objects, each one length-prefixed, over a pipe or a socket pair (blocking fds).

    ``recv`` raises :class:`EOFError` once the other end is closed and nothing is left; ``send``
    raises :class:`OSError` (``BrokenPipeError``) when the other end is gone. One thread at a time
    per direction.
    """

    def __init__(self, fd: int, *, readable: bool = True, writable: bool = True) -> None:
        self._fd = fd
        self.readable = readable
        self.writable = writable

    def fileno(self) -> int:
        if self._fd < 0:
            raise OSError("the channel is closed")
        return self._fd

    def send(self, value: object) -> None:
        data = pickle.dumps(value)
        view = memoryview(_HEADER.pack(len(data)) + data)
        while view:
            view = view[os.write(self.fileno(), view) :]

    def recv(self) -> Any:
        (size,) = _HEADER.unpack(self._read(_HEADER.size))
        return pickle.loads(self._read(size))  # noqa: S301 - our own process sent it

    def poll(self, timeout: float = 0.0) -> bool:
        """Whether :meth:`recv` would not block (a message, or the other end closed), waiting at
        most ``timeout`` seconds."""
        poller = select.poll()
        poller.register(self.fileno(), select.POLLIN)
        return bool(poller.poll(max(0.0, timeout) * 1000))

    def close(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def _read(self, size: int) -> bytes:
        chunks, left = [], size
        while left:
            chunk = os.read(self.fileno(), min(left, 1 << 20))
            if not chunk:
                raise EOFError("the other end of the channel is closed")
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)


@dataclass(frozen=True)
class ChildEnd:
    """The child's end of a :func:`channel`: pass :attr:`fd` in ``pass_fds`` and this object in the
    arguments; the child calls :meth:`open`. The parent calls :meth:`close` once the child started."""

    fd: int
    readable: bool

    def open(self) -> Channel:
        return Channel(self.fd, readable=self.readable)

    def close(self) -> None:
        os.close(self.fd)


def channel(*, duplex: bool) -> tuple[Channel, ChildEnd]:
    """A connection to a child: (the parent's end, the child's end). Without ``duplex`` the child
    only sends and the parent only receives (a pipe); with it both do (a socket pair)."""
    if duplex:
        ours, theirs = socket.socketpair()
        return Channel(ours.detach()), ChildEnd(theirs.detach(), readable=True)
    read_end, write_end = os.pipe()
    return Channel(read_end, writable=False), ChildEnd(write_end, readable=False)


def start_with_channel(
    target: Callable[..., object], *, name: str, args: Iterable[object] = (), duplex: bool
) -> tuple[ChildProcess, Channel]:
    """Start ``target(*args, end)``, ``end`` being the child's :class:`ChildEnd` of a new
    :func:`channel`; returns the child and the parent's end. Raises :class:`OSError` (both ends
    closed) when the child cannot be started."""
    ours, theirs = channel(duplex=duplex)
    try:
        process = start_child(target, name=name, args=(*args, theirs), pass_fds=[theirs.fd])
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return process, ours
