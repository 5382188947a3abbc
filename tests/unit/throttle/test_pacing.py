"""Paced acknowledgements: released in order, no faster than the throttle allows, none across reconnects."""

from __future__ import annotations

from mqtt_kafka_sync.throttle.pacing import PacedAcks


class FixedRate:
    """``rate`` permits per second, no burst beyond one second's worth."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.tokens = 0.0
        self.last = 0.0

    def _refill(self, now: float) -> None:
        self.tokens = min(self.rate, self.tokens + (now - self.last) * self.rate)
        self.last = now

    def allow(self, n: int, now: float) -> int:
        self._refill(now)
        granted = min(n, int(self.tokens))
        self.tokens -= granted
        return granted

    def next_allowed_in(self, now: float) -> float | None:
        self._refill(now)
        return None if self.tokens >= 1 else (1 - self.tokens) / self.rate


def test_releases_in_order_at_the_throttles_pace() -> None:
    now = [0.0]
    sent: list[list[tuple[int, int, int]]] = []
    paced = PacedAcks(FixedRate(10), sent.append, clock=lambda: now[0])
    paced.push([(1, pid, 1) for pid in range(1, 26)])
    assert paced.flush() is not None and sent == []  # no tokens yet
    now[0] = 1.0
    wait = paced.flush()
    assert [pid for _, pid, _ in sent[0]] == list(range(1, 11))
    assert wait is not None and 0 < wait <= 0.1
    now[0] = 2.0
    paced.flush()
    now[0] = 3.0
    assert paced.flush() is None  # all released
    assert [pid for batch in sent for _, pid, _ in batch] == list(range(1, 26))


def test_reset_drops_held_acks_and_release_all_ignores_the_pace() -> None:
    sent: list[list[tuple[int, int, int]]] = []
    paced = PacedAcks(FixedRate(1), sent.append, clock=lambda: 0.0)
    paced.push([(1, 1, 1), (1, 2, 1)])
    paced.reset()
    assert paced.held == 0
    paced.push([(2, 3, 1), (2, 4, 2)])
    paced.release_all()
    assert sent == [[(2, 3, 1), (2, 4, 2)]]
