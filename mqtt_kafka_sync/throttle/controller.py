"""The rate controller: consumer lag in, a permitted rate out, and the token bucket that enforces it.

:class:`RateController` is pure and deterministic: every input (the lag, how many records were let
through, the time) is an argument, so tests drive it step by step with a simulated consumer. One
step per lag sample, every ``T`` seconds. With ``L`` the lag now, ``r`` the permitted rate, ``u``
the rate actually let through since the previous sample, and ``b`` the *balance rate*: the rate at
which the lag would have stayed flat over the last ``N`` samples (what we let through on average,
minus how fast the lag grew; ``N = TREND_SAMPLES``):

=======================  ==============================================================
``L > high``             decrease: ``r = β·min(r, u)``, ``β = 1/2``
``L < low``              increase: ``r = min(r, u, b) + step``
otherwise (between)      hold: ``r = min(r, u + step)``
=======================  ==============================================================

then ``r`` is clamped to ``[rate_min, rate_max]``. So the rate rises by at most ``step`` per
sample, and never more than ``step`` above the balance rate (that is what keeps it from climbing
far past what the consumers take while the lag is still low); it falls by at most half of what was
used; it never runs more than one ``step`` ahead of what was used (headroom nobody used is not
kept for a later burst). The floor ``rate_min`` keeps live traffic flowing whatever the lag.

The bounds these rules give (lag ceiling, rate band, lag floor), with proofs: docs/replay.md,
"Stability". In short, for consumers that drain ``v`` records/s: the lag never passes
``high + 2·(step·T + S/N) + B + W`` (``S``: lag the consumers' commit interval hides, ``B``: the
bucket's burst, ``W``: records in flight), and with fresh commits and ``step <= v/2`` the rate
settles in ``[v/4, v + step]`` and the lag under ``high + step·T + B + W``.

:class:`TokenBucket` hands out the permits: ``rate`` per second, at most ``burst`` at once.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Mode = Literal["enforce", "observe"]
Action = Literal["increase", "hold", "decrease", "no-data"]

DECREASE_FACTOR = 0.5
"""β: the multiplicative decrease. 1/2 keeps the proofs' constants small."""
TREND_SAMPLES = 5
"""``N``: the balance rate is measured over the last ``N`` sample intervals, so the noise of the
consumers' commit interval weighs ``1/N`` in it."""
BURST_SECONDS = 0.1
"""The bucket holds at most this many seconds of permits (and at least one)."""
_EPSILON = 1e-9
"""Permits short of a whole one by less than this count as whole: a caller that sleeps exactly
:meth:`TokenBucket.wait_time` must find its permit, whatever the rounding of the refill."""


@dataclass(frozen=True)
class ControllerSettings:
    """The controller's knobs, for one controller (a task's share, when several share a connector)."""

    lag_high: int
    """High mark: above it the rate halves every sample."""
    lag_low: int
    """Low mark: below it (and not rising) the rate grows by ``step`` every sample."""
    rate_min: float
    """Floor, records/s: live traffic always gets at least this much."""
    rate_max: float
    """Cap, records/s."""
    step: float
    """Additive increase per sample, records/s; also the most the rate may rise in one sample."""
    interval: float
    """``T``: seconds between lag samples."""
    mode: Mode = "enforce"

    def __post_init__(self) -> None:
        if not 0 <= self.lag_low < self.lag_high:
            raise ValueError(f"need 0 <= lag_low < lag_high, got {self.lag_low} and {self.lag_high}")
        if not 0 < self.rate_min <= self.rate_max:
            raise ValueError(f"need 0 < rate_min <= rate_max, got {self.rate_min} and {self.rate_max}")
        if self.step <= 0 or self.interval <= 0:
            raise ValueError("step and interval must be positive")

    def share(self, fraction: float) -> ControllerSettings:
        """The settings of one of ``1/fraction`` controllers that split a connector's rate evenly."""
        return ControllerSettings(
            lag_high=self.lag_high,
            lag_low=self.lag_low,
            rate_min=self.rate_min * fraction,
            rate_max=self.rate_max * fraction,
            step=self.step * fraction,
            interval=self.interval,
            mode=self.mode,
        )


@dataclass(frozen=True, slots=True)
class Decision:
    """What one controller step saw and did."""

    at: float
    lag: int | None
    """The lag this step acted on; None when it could not be read (the rate is then held)."""
    used_rate: float
    """Records/s actually let through since the previous step."""
    balance_rate: float
    """Records/s at which the lag would have stayed flat over the trend window (inf: not known yet)."""
    rate_before: float
    rate: float
    action: Action


class RateController:
    """AIMD with hysteresis over consumer lag; see the module docstring for the rules."""

    def __init__(self, settings: ControllerSettings, *, initial_rate: float | None = None) -> None:
        self.settings = settings
        start = settings.rate_min if initial_rate is None else initial_rate
        self.rate = min(settings.rate_max, max(settings.rate_min, start))
        # (time, lag, admitted) of the last TREND_SAMPLES + 1 samples with a lag.
        self._history: deque[tuple[float, int, int]] = deque(maxlen=TREND_SAMPLES + 1)

    def step(self, now: float, lag: int | None, admitted: int) -> Decision:
        """One sample: the time, the lag now (None: unknown), how many records were let through so
        far (a running count)."""
        s = self.settings
        before = self.rate
        history = self._history
        previous = history[-1] if history else None
        used = before
        if previous is not None and now > previous[0]:
            used = max(0.0, (admitted - previous[2]) / (now - previous[0]))
        if lag is None:
            # Nothing to go on: keep the rate, and start the trend afresh once the lag is back.
            history.clear()
            return Decision(now, None, used, math.inf, before, before, "no-data")
        history.append((now, lag, admitted))
        balance = math.inf
        oldest = history[0]
        if now > oldest[0]:
            window = now - oldest[0]
            balance = max(0.0, (admitted - oldest[2] - (lag - oldest[1])) / window)
        action: Action
        if lag > s.lag_high:
            rate, action = DECREASE_FACTOR * min(before, used), "decrease"
        elif lag < s.lag_low:
            rate, action = min(before, used, balance) + s.step, "increase"
        else:
            rate, action = min(before, used + s.step), "hold"
        self.rate = min(s.rate_max, max(s.rate_min, rate))
        return Decision(now, lag, used, balance, before, self.rate, action)


class TokenBucket:
    """``rate`` permits per second, at most ``burst`` saved up; thread-safe, O(1), no allocation.

    ``now`` defaults to the injected ``clock`` (monotonic seconds). ``taken`` counts every permit
    handed out, so a reader can tell the rate actually used.
    """

    __slots__ = ("_burst_seconds", "_capacity", "_clock", "_last", "_lock", "_rate", "_tokens", "taken")

    def __init__(
        self,
        rate: float,
        *,
        burst_seconds: float = BURST_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        full: bool = False,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self._clock = clock
        self._lock = threading.Lock()
        self._burst_seconds = burst_seconds
        self._rate = rate
        self._capacity = max(1.0, rate * burst_seconds)
        self._tokens = self._capacity if full else 0.0
        self._last = clock()
        self.taken = 0

    @property
    def rate(self) -> float:
        return self._rate

    @property
    def capacity(self) -> float:
        """``B``: the most permits that can go at once."""
        return self._capacity

    def _refill(self, now: float) -> None:
        elapsed = now - self._last
        if elapsed > 0:
            self._tokens = min(self._capacity, self._tokens + elapsed * self._rate)
            self._last = now

    def try_take(self, n: int, now: float | None = None) -> int:
        """Take up to ``n`` permits now; returns how many were taken (0 to ``n``)."""
        if n <= 0:
            return 0
        with self._lock:
            self._refill(self._clock() if now is None else now)
            granted = min(n, int(self._tokens + _EPSILON))
            self._tokens = max(0.0, self._tokens - granted)
            self.taken += granted
            return granted

    def wait_time(self, n: int = 1, now: float | None = None) -> float:
        """Seconds until ``n`` permits (at most a bucketful) could be taken; 0.0 when they can now."""
        with self._lock:
            self._refill(self._clock() if now is None else now)
            missing = min(float(n), self._capacity) - self._tokens
            return missing / self._rate if missing > _EPSILON else 0.0

    def set_rate(self, rate: float, now: float | None = None) -> None:
        """From ``now`` on, ``rate`` permits per second; what was saved beyond the new burst is dropped."""
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        with self._lock:
            self._refill(self._clock() if now is None else now)
            self._rate = rate
            self._capacity = max(1.0, rate * self._burst_seconds)
            self._tokens = min(self._tokens, self._capacity)
