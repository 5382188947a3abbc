"""Logging set-up for the command line: one line per event, quiet unless something changes."""

from __future__ import annotations

import contextlib
import faulthandler
import io
import logging
import signal
import sys

from mqtt_kafka_sync.telemetry.logfilter import RepeatFilter, TransientFilter


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
