"""Waking the ingest subscriber's network thread from any thread: one byte on a socketpair."""

from __future__ import annotations

import contextlib
import socket


class Wakeup:
    """:attr:`reader` is in the network loop's selector; :meth:`wake` makes it readable."""

    def __init__(self) -> None:
        self.reader, self._writer = socket.socketpair()
        self.reader.setblocking(False)
        self._writer.setblocking(False)
        self._pending = False

    def wake(self) -> None:
        """Any thread; at most one byte is on its way at a time."""
        if not self._pending:
            self._pending = True
            with contextlib.suppress(OSError):
                self._writer.send(b"\0")

    def drain(self) -> None:
        """Network thread, when :attr:`reader` is readable."""
        # Read the wake bytes first, then clear the flag: the queues are collected after this, so
        # anything queued before the flag cleared is seen, and anything after sends a fresh byte.
        with contextlib.suppress(BlockingIOError):
            while self.reader.recv(4096):
                pass
        self._pending = False

    def close(self) -> None:
        self.reader.close()
        self._writer.close()
