"""``run``'s connector files, loaded and checked in a short-lived child process.

Checking a file builds a librdkafka producer and consumer (to validate its ``kafka.*`` keys) and
parses its Avro schemas with fastavro: about 30 MB of libraries and heap that the supervisor would
otherwise carry for the whole run, for a check made once at start (docs/benchmarks.md, "Memory").
The child loads and checks the files exactly as ``validate`` does, sends back the typed configs
with their warnings, or the problems, and exits; the supervisor keeps only the config model.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import cast

from mqtt_kafka_sync.child_process import ChildEnd, start_with_channel
from mqtt_kafka_sync.config.model import ConnectorConfig
from mqtt_kafka_sync.errors import ConfigError, ConfigProblem, SyncError
from mqtt_kafka_sync.logs import configure_logging

Answer = tuple[str, object]
"""``("configs", (configs, warnings))``, ``("problems", problems)`` or ``("error", text)``."""


def _check(paths: Sequence[Path], environ: dict[str, str], log_level: int, answer_to: ChildEnd) -> None:
    """The child: load and check, send the answer."""
    out = answer_to.open()
    from mqtt_kafka_sync.config.advice import config_warnings  # noqa: PLC0415 - the child's only
    from mqtt_kafka_sync.config.loader import load_connectors  # noqa: PLC0415

    configure_logging(log_level)
    answer: Answer
    try:
        configs = load_connectors(paths, environ)
        answer = ("configs", (configs, config_warnings(configs)))
    except ConfigError as exc:
        answer = ("problems", exc.problems)
    except SyncError as exc:
        answer = ("error", str(exc))
    out.send(answer)
    out.close()


def load_checked(
    paths: Sequence[Path], environ: Mapping[str, str]
) -> tuple[list[ConnectorConfig], list[ConfigProblem]]:
    """Every connector in ``paths`` and the warnings about them, as ``load_connectors`` and
    ``config_warnings`` give them; raises :class:`ConfigError` listing every problem, or
    :class:`SyncError` (also when the checking process dies)."""
    try:
        process, reader = start_with_channel(
            _check,
            name="config-check",
            args=(list(paths), dict(environ), logging.getLogger().level),
            duplex=False,
        )
    except OSError as exc:
        raise SyncError(f"cannot start the process that checks the connector files ({exc})") from None
    try:
        kind, value = reader.recv()
    except EOFError:
        process.join()
        raise SyncError(
            f"the process checking the connector files exited with code {process.exitcode} before "
            "answering (its output above says why)"
        ) from None
    finally:
        reader.close()
    process.join()
    if kind == "problems":
        raise ConfigError(cast("tuple[ConfigProblem, ...]", value))
    if kind == "error":
        raise SyncError(str(value))
    configs, warnings = cast("tuple[list[ConnectorConfig], list[ConfigProblem]]", value)
    return configs, warnings
