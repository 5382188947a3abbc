"""Logging set-up for the command line: one line per event, quiet unless something changes."""

from __future__ import annotations

import logging
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
