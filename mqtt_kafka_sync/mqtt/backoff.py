"""Capped exponential waits with jitter, for every "try again later" of the ingest subscriber."""

from __future__ import annotations

import random
from collections.abc import Callable

REFUSED_MIN_S, REFUSED_MAX_S = 1.0, 60.0
"""Waits after the broker refused us (CONNACK or SUBACK), or an error that is not ``retriable``."""


class Backoff:
    """Capped exponential waits with jitter: the n-th wait since :meth:`reset` is drawn from
    ``[d/2, d]`` with ``d = min(cap, first * 2**(n-1))``, so peers refused together spread out."""

    def __init__(self, rand: Callable[[], float] = random.random) -> None:
        self.attempts = 0
        self._rand = rand

    def next(self, first: float, cap: float) -> float:
        ceiling = min(cap, first * 2.0 ** min(self.attempts, 30))
        self.attempts += 1
        return ceiling * (0.5 + 0.5 * self._rand())

    def reset(self) -> None:
        self.attempts = 0
