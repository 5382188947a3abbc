"""A few numbers shared between a parent and its child processes, with a lock across processes.

What ``run``'s supervisor and its task processes share (the status counters, the metrics block, a
throttle's lag feed) used to be ``multiprocessing.Array``: a file in ``/dev/shm`` and a POSIX
semaphore, which multiprocessing registers with its resource tracker, one more interpreter in the
tree (docs/benchmarks.md, "Memory of `run`"). A :class:`SharedBlock` is an anonymous memory file
(``memfd_create``), mapped in each process that holds it. It pickles as its file descriptor, which
a child started by :func:`~mqtt_kafka_sync.child_process.start_child` with that fd in ``pass_fds``
inherits at the same number; the child maps the same pages. The memory goes when the last process
holding the fd is gone: nothing to clean up after a crash, nothing in ``/dev/shm``.

The lock: a POSIX record lock (``fcntl.lockf``) on the memory file, taken on every read and write
of the numbers, so a reader never sees half a write. Record locks are held by a *process*, not by a
thread or an fd: two threads of one process would both get it, so a re-entrant
:class:`threading.RLock` comes first and the record lock is taken by the outermost holder only
(the same order in every process, so no deadlock). Not ``flock``: an inherited fd shares its open
file description, and with it the ``flock``, between parent and child, so it would exclude nobody.
A record lock is dropped when its process closes *any* fd of the file: keep one :class:`SharedBlock`
per block per process (a child unpickles each block once) and close it only when done.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
import threading
from array import array
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar, overload

N = TypeVar("N", int, float)


class SharedBlock(Generic[N]):
    """``size`` numbers of one ``array`` typecode; build one with :func:`doubles` or :func:`integers`.

    Indexing and slice assignment take the lock (as ``multiprocessing.Array`` did); hold
    :meth:`get_lock` around a read-modify-write.
    """

    def __init__(self, typecode: str, size: int, fd: int | None = None) -> None:
        self.typecode = typecode
        self.size = size
        nbytes = max(1, size) * array(typecode).itemsize
        if fd is None:
            fd = os.memfd_create("mqtt-kafka-sync", os.MFD_CLOEXEC)
            try:
                os.ftruncate(fd, nbytes)
            except OSError:
                os.close(fd)
                raise
        self.fd = fd
        self._map = mmap.mmap(fd, nbytes)
        self._raw = memoryview(self._map)
        self._typed = self._raw.cast(typecode)  # type: ignore[call-overload]  # 'd' or 'q'
        self._view = self._typed[:size]
        self._lock = threading.RLock()
        self._depth = 0

    def __reduce__(self) -> tuple[type[SharedBlock[N]], tuple[str, int, int]]:
        """Pickled for a child that inherits :attr:`fd` (``pass_fds``): it maps the same memory."""
        return (type(self), (self.typecode, self.size, self.fd))

    def __len__(self) -> int:
        return self.size

    @contextlib.contextmanager
    def get_lock(self) -> Iterator[None]:
        """Exclusive against every other thread and process holding this block; re-entrant."""
        with self._lock:
            if self._depth == 0:
                fcntl.lockf(self.fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.lockf(self.fd, fcntl.LOCK_UN)

    @overload
    def __getitem__(self, index: int) -> N: ...
    @overload
    def __getitem__(self, index: slice) -> list[N]: ...
    def __getitem__(self, index: int | slice) -> N | list[N]:
        with self.get_lock():
            if isinstance(index, slice):
                values: list[N] = self._view[index].tolist()
                return values
            value: N = self._view[index]
            return value

    @overload
    def __setitem__(self, index: int, value: N) -> None: ...
    @overload
    def __setitem__(self, index: slice, value: Iterable[N]) -> None: ...
    def __setitem__(self, index: int | slice, value: N | Iterable[N]) -> None:
        with self.get_lock():
            if isinstance(index, slice):
                self._view[index] = array(self.typecode, value)  # type: ignore[arg-type]
            else:
                self._view[index] = value

    def close(self) -> None:
        """Unmap and close the fd (a child started with it keeps its own)."""
        for view in (self._view, self._typed, self._raw):
            view.release()
        self._map.close()
        os.close(self.fd)


def doubles(size: int) -> SharedBlock[float]:
    """``size`` doubles, all 0.0."""
    return SharedBlock("d", size)


def integers(size: int) -> SharedBlock[int]:
    """``size`` signed 64-bit integers, all 0."""
    return SharedBlock("q", size)
