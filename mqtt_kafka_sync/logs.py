"""Logging: the set-up of every process (one line per event, quiet unless something changes) and the
filters for lines that repeat per message or per reconnect attempt (one per kind per minute).

Normal operation logs nothing, and a failure logs a line when it starts; but some failures happen to
every message (a topic refusing records) or to every reconnect attempt (librdkafka, several times a
second per broker). Loggers of such lines get a :class:`RepeatFilter`.
"""

from __future__ import annotations

import contextlib
import faulthandler
import io
import logging
import re
import signal
import sys
import time
from collections.abc import Callable


def configure_logging(level: int) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
        force=True,
    )
    librdkafka = logging.getLogger("librdkafka")
    librdkafka.setLevel(max(level, logging.WARNING))
    for old in [f for f in librdkafka.filters if isinstance(f, RepeatFilter | TransientFilter)]:
        librdkafka.removeFilter(old)
    librdkafka.addFilter(TransientFilter())
    librdkafka.addFilter(RepeatFilter())


def dump_stacks_on_sigusr1() -> None:
    """``kill -USR1 <pid>`` prints every thread's stack to stderr: what a stuck process is doing."""
    # stderr without a file descriptor (captured by a test runner): no dumps, nothing else changes
    with contextlib.suppress(io.UnsupportedOperation, ValueError):
        faulthandler.register(signal.SIGUSR1, all_threads=True)


_NUMBERS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """Lets one line of a kind through per ``interval`` seconds; the next says how many were held back.

    librdkafka logs a failed connection on every reconnect attempt, several times a second per
    broker while Kafka is away: without this a Kafka restart writes thousands of lines. Lines of
    one kind differ only in numbers ("after 0ms", "after 1ms"), so digits are ignored when comparing.
    """

    MAX_KINDS = 1000

    def __init__(self, interval: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self._interval = interval
        self._clock = clock
        self._seen: dict[tuple[int, str], tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        key = (record.levelno, _NUMBERS.sub("#", message))
        now = self._clock()
        last, held = self._seen.get(key, (-self._interval, 0))
        if now - last < self._interval:
            self._seen[key] = (last, held + 1)
            return False
        if len(self._seen) >= self.MAX_KINDS:
            self._seen.clear()
        self._seen[key] = (now, 0)
        if held:
            record.msg, record.args = f"{message} ({held} similar lines held back)", ()
        return True


class TransientFilter(logging.Filter):
    """librdkafka warnings about conditions it retries by itself, seen right after a broker starts:
    logged at INFO (so not at all at the default WARNING level).

    A fresh Kafka answers "Coordinator load in progress" while it loads its internal topics, and
    the producer's request for its idempotence id is retried until it succeeds; a restarted broker's
    partition leaders are briefly missing from the client's metadata cache. Both pass in seconds. If
    Kafka stays unusable, what follows is not transient and is logged as it was: all brokers down,
    connection failures, delivery errors.
    """

    TRANSIENT = ("Coordinator load in progress", "not found in cache")
    DEMOTED = ("SASL authentication error", "SSL handshake failed")
    """librdkafka's errors of a refused login or TLS handshake: logged at WARNING, as the detail of
    the one ERROR line :mod:`~mqtt_kafka_sync.kafka.connection_state` writes for the episode (naming
    the client); a connection lost while it authenticated ("SaslAuthenticateRequest failed: Local:
    Broker transport failure", e.g. a client closed during its handshake) is no refusal at all."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.ERROR and any(text in record.getMessage() for text in self.DEMOTED):
            record.levelno, record.levelname = logging.WARNING, "WARNING"
            return True
        if logging.WARNING <= record.levelno < logging.ERROR and any(
            text in record.getMessage() for text in self.TRANSIENT
        ):
            record.levelno, record.levelname = logging.INFO, "INFO"
            return logging.getLogger().isEnabledFor(logging.INFO)
        return True


def per_record_logger(name: str) -> logging.Logger:
    """``<name>.records``: the logger for lines written per message or record, filtered."""
    log = logging.getLogger(f"{name}.records")
    if not any(isinstance(f, RepeatFilter) for f in log.filters):
        log.addFilter(RepeatFilter())
    return log
