"""Logging set-up for the command line: one line per event, quiet unless something changes."""

from __future__ import annotations

import logging
import sys


def configure_logging(level: int) -> None:
    logging.basicConfig(
        level=level,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(processName)s %(name)s: %(message)s",
        force=True,
    )
    logging.getLogger("librdkafka").setLevel(max(level, logging.WARNING))
