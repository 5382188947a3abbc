"""Stop on SIGINT / SIGTERM, however the process's threads take the signal.

``run``'s supervisor, each task process and ``replay`` stop cleanly on a signal: a
:class:`threading.Event` is set, the main loop sees it and drains. Setting that event from a Python
signal handler is not reliable on CPython 3.11 when the process has other threads:

- the kernel hands a process-directed signal to any thread that does not block it (a network
  thread, say); the interpreter then runs the Python handler later, on the main thread, and in
  loops like ours (the main thread waiting in ``Event.wait`` while another thread takes the signal)
  that call was lost about once in 300 to 900 signals (``pthread_kill`` to a busy thread, 3.11.2
  and 3.11.7): a worker that does not stop;
- a handler that sets an event the main thread is waiting on runs between bytecodes of that very
  wait, possibly while the event's lock is held.

So the handler does nothing itself. The interpreter's C-level handler, which runs on whichever
thread takes the signal and is never lost, writes the signal's number to a wakeup pipe
(:func:`signal.set_wakeup_fd`); a watcher thread reads it and sets the event.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def _noted(_signum: int, _frame: FrameType | None) -> None:
    """The Python-level handler: nothing to do, the watcher acts on the wakeup pipe."""


@contextmanager
def stop_on_signals(stop: threading.Event, signals: Sequence[int] = STOP_SIGNALS) -> Iterator[None]:
    """While inside, any of ``signals`` sets ``stop`` (from a watcher thread). Main thread only
    (as :func:`signal.signal`); the previous handlers and wakeup fd come back on exit."""
    wanted = frozenset(int(s) for s in signals)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)  # the C handler must never block
    previous_fd = signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    previous = {sig: signal.signal(sig, _noted) for sig in signals}

    def watch() -> None:
        while chunk := os.read(read_end, 64):  # b"" once the write end is closed
            if wanted.intersection(chunk):
                stop.set()

    watcher = threading.Thread(target=watch, name="signal-watcher", daemon=True)
    watcher.start()
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        signal.set_wakeup_fd(previous_fd)
        os.close(write_end)
        watcher.join(5.0)
        os.close(read_end)
