"""The ``replay`` command's work, from request to outcome: plan, run until done or signalled.

``cli/replay.py`` parses the options into a :class:`~mqtt_kafka_sync.replay.request.ReplayRequest`
and prints what :func:`run_replay` reports through its :class:`Reporter`; planning, running and
SIGINT/SIGTERM handling are here, so the command line only parses and prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mqtt_kafka_sync.replay.exceptions import ReplayError
from mqtt_kafka_sync.replay.progress import ReplayResult
from mqtt_kafka_sync.replay.request import ReplayRequest
from mqtt_kafka_sync.replay.runner import ReplayRunner, RunEvents
from mqtt_kafka_sync.replay.session import Planned, ReplaySession, TopicCreation
from mqtt_kafka_sync.signals import stop_on_signals


class Reporter(RunEvents, Protocol):
    """What a replay tells the user as it goes (the command prints it)."""

    def creation(self, creation: TopicCreation) -> None:
        """The target topic was created (or, in a dry run, would be)."""

    def plan(self, planned: Planned) -> None:
        """The plan, before anything is sent."""

    def dead_letters(self, summary: str) -> None:
        """The run failed; these records had gone to the dead-letter topic before it did."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a replay ended, when it did not raise."""

    checkpoint: Path
    planned: Planned | None
    """None: the checkpoint says this replay is already complete."""
    result: ReplayResult | None
    """None: nothing ran (already complete, or a dry run)."""
    dead_letters: str | None = None
    """The dead-letter summary of a replay into MQTT, when any record was dead-lettered."""


def run_replay(request: ReplayRequest, reporter: Reporter) -> Outcome:
    """Plan ``request`` and, unless it is a dry run, run it; SIGINT and SIGTERM stop it cleanly.

    Raises :class:`ReplayError` (and ``ConfigError`` for a bad ``--to-mqtt`` connector file).
    """
    with ReplaySession(request) as session:
        planned = session.plan(reporter.creation)
        if planned is None:
            return Outcome(session.path, None, None)
        reporter.plan(planned)
        if request.dry_run:
            return Outcome(session.path, planned, None)
        with ReplayRunner(session, planned, reporter) as runner:
            try:
                with stop_on_signals(runner.stop):
                    result = runner.run()
            except ReplayError:
                if summary := runner.dead_letter_summary():
                    reporter.dead_letters(summary)
                raise
    return Outcome(session.path, planned, result, runner.dead_letter_summary())
