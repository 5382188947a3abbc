"""How far a replay is: what the copy loop reports while it runs, and what it returns at the end.

:class:`RateMeter` turns the confirmed count into a rate, smoothed over the reports, so one slow
interval does not swing the ETA; the final report gives the run's average instead.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Progress:
    done: int
    """Offsets confirmed by the target."""
    total: int
    rate: float
    """Confirmed records per second, recently."""
    elapsed: float
    finished: bool = False

    @property
    def percent(self) -> float:
        """Of the total; 100 for an empty range."""
        return 100.0 * self.done / self.total if self.total else 100.0

    @property
    def eta_seconds(self) -> float | None:
        left = self.total - self.done
        if left <= 0:
            return 0.0
        return left / self.rate if self.rate > 0 else None


@dataclass(frozen=True)
class ReplayResult:
    complete: bool
    """False: stopped (Ctrl-C, SIGTERM) before the end; run again to resume."""
    done: int
    total: int
    sent: int
    """Records produced by this run (a resume also counts the ones it repeats)."""
    seconds: float


class RateMeter:
    """Confirmed records per second: each :meth:`update` moves the rate 30% of the way to the rate
    since the last one."""

    def __init__(self, done: int, now: float) -> None:
        self.rate = 0.0
        self.last = now
        """When :meth:`update` last ran (at first: the start)."""
        self._done_at_start = done
        self._done_at_last = done

    def update(self, done: int, now: float) -> float:
        """The rate, with ``done`` offsets confirmed at ``now`` (later than the last update)."""
        self.rate = 0.7 * self.rate + 0.3 * (done - self._done_at_last) / (now - self.last)
        self._done_at_last, self.last = done, now
        return self.rate

    def reported(self, done: int, elapsed: float, *, finished: bool) -> float:
        """The rate a report shows: at the end, the run's average (records confirmed before this run
        not counted); before, the smoothed rate."""
        if finished and elapsed > 0:
            return (done - self._done_at_start) / elapsed
        return self.rate
