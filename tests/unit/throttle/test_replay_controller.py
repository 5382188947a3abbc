"""The rate controller against a simulated consumer, with an injected clock: no network, no sleeps.

The bounds asserted here are the ones docs/replay.md ("Stability") states and proves; ``T`` is the
sample interval, ``a`` the step, ``v`` the consumers' drain rate, ``B`` the bucket's burst.

- ceiling, fresh commits, ``a <= v``: lag <= high + a*T + B
- ceiling, commits every ``c`` s (``S = v*c`` hidden), after N samples: lag <= high + 2*(a*T + S/N) + B
- band, fresh commits, constant v, ``a <= v/2``, backlog never empty: after the first decrease the
  rate stays in [v/4, v + a] and the lag above low - T*(D + D^2/(2a)), D = 3v/4
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

import pytest

from mqtt_kafka_sync.throttle.controller import (
    TREND_SAMPLES,
    ControllerSettings,
    RateController,
    TokenBucket,
)
from mqtt_kafka_sync.throttle.lag_throttle import FixedRateThrottle, LagThrottle
from mqtt_kafka_sync.throttle.pacing import AckThrottle

DT = 0.01


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Run:
    """What one simulation saw: true lag every DT, and per sample (time, rate set, action, lag)."""

    max_lag: float = 0.0
    max_measured: int = 0
    drained_at: float | None = None
    samples: list[tuple[float, float, str, float]] = field(default_factory=list)
    lag_trace: list[tuple[float, float]] = field(default_factory=list)
    burst: float = 0.0

    def after_first_decrease(self) -> list[tuple[float, float, str, float]]:
        first = next(i for i, s in enumerate(self.samples) if s[2] == "decrease")
        return self.samples[first + 1 :]


def simulate(
    settings: ControllerSettings,
    *,
    drain: float | list[tuple[float, float]],
    seconds: float,
    backlog: int = 0,
    live: float = 0.0,
    commit_every: float = 0.0,
) -> Run:
    """A producer with ``backlog`` waiting plus ``live`` records/s, paced by the bucket; one consumer
    group draining ``drain`` records/s (or ``[(from_time, rate), ...]``), committing every
    ``commit_every`` s (0: continuously). The controller reads the committed lag every T."""
    clock = Clock()
    controller = RateController(settings)
    bucket = TokenBucket(controller.rate, clock=clock)
    schedule = [(0.0, drain)] if isinstance(drain, float | int) else drain
    run = Run()
    waiting, end, consumed, committed = backlog, 0, 0.0, 0
    arrivals, last_commit, next_sample = 0.0, 0.0, settings.interval
    for i in range(1, round(seconds / DT) + 1):
        clock.now = now = i * DT
        arrivals += live * DT
        waiting += int(arrivals)
        arrivals -= int(arrivals)
        granted = bucket.try_take(waiting, now)
        waiting -= granted
        end += granted
        if waiting == 0 and run.drained_at is None and backlog:
            run.drained_at = now
        rate_now = next(r for t, r in reversed(schedule) if now >= t)
        consumed = min(float(end), consumed + rate_now * DT)
        if commit_every == 0 or now - last_commit >= commit_every - 1e-9:
            committed, last_commit = int(consumed), now
        run.max_lag = max(run.max_lag, end - consumed)
        run.burst = max(run.burst, bucket.capacity)
        if i % 10 == 0:
            run.lag_trace.append((now, end - consumed))
        if now >= next_sample - 1e-9:
            next_sample += settings.interval
            measured = end - committed
            run.max_measured = max(run.max_measured, measured)
            decision = controller.step(now, measured, bucket.taken)
            bucket.set_rate(decision.rate, now)
            run.samples.append((now, decision.rate, decision.action, end - consumed))
    return run


def settings(
    high: int = 20_000, low: int | None = None, step: float = 800.0, **kw: float
) -> ControllerSettings:
    values: dict[str, float] = {"rate_min": 100.0, "rate_max": 50_000.0, "interval": 1.0}
    values.update(kw)
    return ControllerSettings(
        lag_high=high,
        lag_low=high // 2 if low is None else low,
        rate_min=values["rate_min"],
        rate_max=values["rate_max"],
        step=step,
        interval=values["interval"],
    )


# -- the rules, one step at a time ----------------------------------------------------------------


def test_rules_decrease_above_high_increase_below_low_hold_between() -> None:
    c = RateController(settings(high=1000, low=500, step=10, rate_min=1), initial_rate=100)
    assert c.step(1.0, 1200, 100).action == "decrease"  # used 100/s -> half
    assert c.rate == 50
    assert c.step(2.0, 800, 150).action == "hold"  # between the marks
    assert c.rate == 50
    d = c.step(3.0, 100, 200)  # below low, lag falling fast: balance is high, + step
    assert (d.action, c.rate) == ("increase", 60)
    d = c.step(4.0, 0, 260)
    assert (d.action, c.rate) == ("increase", 70)


def test_increase_is_capped_by_the_balance_rate_not_only_the_step() -> None:
    # 100 records/s let through, lag rose by 50/s: the consumers take 50/s; rate -> 50 + step.
    c = RateController(settings(high=10_000, low=5_000, step=10, rate_min=1), initial_rate=100)
    c.step(0.0, 0, 0)
    d = c.step(1.0, 50, 100)
    assert d.balance_rate == pytest.approx(50)
    assert d.action == "increase"
    assert c.rate == pytest.approx(60)


def test_unused_headroom_is_dropped_and_the_floor_and_cap_hold() -> None:
    c = RateController(settings(high=1000, low=500, step=10, rate_min=5, rate_max=200), initial_rate=200)
    c.step(0.0, 700, 0)
    assert c.step(1.0, 700, 20).rate == 30  # hold, but only 20/s were used: 20 + step
    for k in range(2, 12):
        c.step(float(k), 5000, 20 + k)  # far above high, nothing used: floor
    assert c.rate == 5
    for k in range(12, 200):
        c.step(float(k), 0, 10_000 * k)  # no lag, plenty used: cap
    assert c.rate == 200


def test_unknown_lag_holds_the_rate_and_restarts_the_trend() -> None:
    c = RateController(settings(high=1000, low=500, step=10, rate_min=1), initial_rate=100)
    assert c.step(0.0, 0, 0).rate == 110
    d = c.step(1.0, None, 100)
    assert (d.action, d.rate_before, d.rate) == ("no-data", 110, 110)
    d = c.step(2.0, 0, 200)
    assert d.balance_rate == math.inf and d.action == "increase"


def test_settings_are_checked_and_shared_evenly() -> None:
    with pytest.raises(ValueError, match="lag_low < lag_high"):
        settings(high=100, low=100)
    with pytest.raises(ValueError, match="rate_min <= rate_max"):
        settings(rate_min=10, rate_max=5)
    share = settings(step=800, rate_min=100, rate_max=1000).share(0.25)
    assert (share.step, share.rate_min, share.rate_max, share.lag_high) == (200, 25, 250, 20_000)


# -- the stated bounds, against a simulated consumer ----------------------------------------------


def test_a_100k_backlog_drains_with_the_lag_under_the_ceiling_and_the_rate_recovers() -> None:
    s = settings(high=20_000, step=800)
    nu = 2000.0
    run = simulate(s, drain=nu, seconds=120, backlog=100_000, live=200)
    assert run.max_lag <= s.lag_high + s.step * s.interval + run.burst, run.max_lag
    assert run.drained_at is not None and run.drained_at < 60  # 100k at 2,000/s takes 50 s at best
    # The backlog is gone and the consumer caught up: the rate follows the live traffic, + one step.
    _now, rate, _action, lag = run.samples[-1]
    assert lag < 100 and rate == pytest.approx(200 + s.step, rel=0.05)


def test_the_rate_recovers_when_the_consumer_speeds_up() -> None:
    s = settings(high=20_000, step=800)
    run = simulate(s, drain=[(0.0, 1000.0), (100.0, 6000.0)], seconds=200, backlog=10**9)
    slow = [r for t, r, _a, _l in run.samples if 50 <= t < 100]
    assert max(slow) <= 1000 + s.step  # held near the slow consumer
    fast = [r for t, r, _a, _l in run.samples if t >= 160]
    assert min(fast) >= 6000 / 4 and max(fast) <= 6000 + s.step
    # From about 1,000/s to the new drain rate at `step` per sample, plus the low mark's dip.
    reached = next(t for t, r, _a, _l in run.samples if t >= 100 and r >= 6000)
    assert reached - 100 <= (6000 - 500) / s.step + 10, reached


def test_live_traffic_is_never_starved_even_when_the_consumer_stops() -> None:
    s = settings(high=5_000, step=200, rate_min=300)
    run = simulate(s, drain=[(0.0, 2000.0), (30.0, 0.0)], seconds=90, backlog=10**9)
    assert min(r for _t, r, _a, _l in run.samples) >= 300
    stopped = [r for t, r, _a, _l in run.samples if t >= 45]
    assert stopped and all(r == 300 for r in stopped)


@pytest.mark.parametrize("seed", range(12))
def test_oscillation_stays_in_the_stated_band(seed: int) -> None:
    rnd = random.Random(seed)
    nu = rnd.choice([500.0, 2000.0, 8000.0])
    interval = rnd.choice([0.5, 1.0, 2.0])
    high = rnd.choice([5_000, 20_000, 60_000])
    step = rnd.uniform(0.05, 0.5) * nu  # a <= v/2
    s = settings(high=high, low=high // 2, step=step, interval=interval, rate_min=min(100.0, nu / 4))
    run = simulate(s, drain=nu, seconds=1000 * interval, backlog=10**9)
    assert run.max_lag <= high + step * interval + run.burst
    assert max(r for _t, r, _a, _l in run.samples) <= nu + step
    steady = run.after_first_decrease()
    assert len(steady) > 20, "the lag never reached the high mark: nothing to check"
    rates = [r for _t, r, _a, _l in steady]
    assert nu / 4 <= min(rates), min(rates)
    d = 0.75 * nu
    floor = s.lag_low - interval * (d + d * d / (2 * step))
    start = steady[0][0]
    assert min(lag for t, lag in run.lag_trace if t >= start) >= min(floor, s.lag_low) - 1


@pytest.mark.parametrize(("commit_every", "seed"), [(1.0, 0), (2.0, 1), (5.0, 2), (5.0, 3)])
def test_stale_commits_cost_at_most_the_stated_overshoot(commit_every: float, seed: int) -> None:
    rnd = random.Random(seed)
    nu = rnd.choice([1000.0, 4000.0])
    high, interval = 30_000, 1.0
    step = 0.2 * nu
    s = settings(high=high, step=step, interval=interval, rate_min=min(100.0, nu / 4))
    run = simulate(s, drain=nu, seconds=300, backlog=10**9, commit_every=commit_every)
    hidden = nu * commit_every
    bound = high + 2 * (step * interval + hidden / TREND_SAMPLES) + run.burst
    assert run.max_lag <= bound, (run.max_lag, bound)
    assert run.max_measured <= bound + hidden


def test_observe_mode_lets_everything_through_but_reports_what_enforce_would_do() -> None:
    clock = Clock()
    s = ControllerSettings(1000, 500, 10.0, 1000.0, 10.0, 1.0, mode="observe")
    throttle = LagThrottle(s, clock=clock)
    assert throttle.allow(5000, 0.0) == 5000 and throttle.next_allowed_in(0.0) is None
    clock.now = 1.0
    d = throttle.update(5000)
    assert d.action == "decrease" and throttle.rate == 10.0 and throttle.last_lag == 5000
    assert throttle.allow(7, 1.0) == 7 and throttle.admitted == 5007


# -- the token bucket and the AckThrottle the ingest calls ----------------------------------------


def test_token_bucket_grants_at_its_rate_with_a_bounded_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(100.0, clock=clock)  # burst: 0.1 s = 10 permits
    assert bucket.try_take(5) == 0 and bucket.wait_time(1) == pytest.approx(0.01)
    clock.now = 0.05
    assert bucket.try_take(50) == 5
    clock.now = 10.0  # idle for long: still only a burst's worth
    assert bucket.try_take(1000) == 10
    assert bucket.wait_time(1000) == pytest.approx(0.1)  # a whole bucket, never more
    bucket.set_rate(1000.0)
    clock.now = 10.2
    assert bucket.try_take(1000) == 100 and bucket.taken == 115
    bucket.set_rate(10.0)  # burst shrinks to 1
    clock.now = 20.0
    assert bucket.try_take(1000) == 1


def test_lag_throttle_is_an_ack_throttle_that_follows_the_controller() -> None:
    clock = Clock()
    throttle: AckThrottle = LagThrottle(settings(high=1000, low=500, step=100, rate_min=100), clock=clock)
    assert isinstance(throttle, LagThrottle)
    assert throttle.allow(10, 0.0) == 0
    wait = throttle.next_allowed_in(0.0)
    assert wait == pytest.approx(0.01)
    clock.now = 1.0
    assert throttle.allow(1000, 1.0) == 10  # 100/s, burst 10
    throttle.update(0)  # first sample, no lag: + step
    assert throttle.rate == 200
    assert throttle.next_allowed_in(1.0) is not None
    clock.now = 2.0
    assert throttle.next_allowed_in(2.0) is None  # a permit is there now
    fixed: AckThrottle = FixedRateThrottle(50.0, clock=clock)
    assert fixed.allow(100, 3.0) == 5


def test_several_tasks_sharing_a_connector_stay_within_the_single_controller_ceiling() -> None:
    """Observed, not proven (docs/replay.md): N tasks, each with 1/N of the rates and step, sampling
    at unrelated moments, behave like one controller."""
    nu, tasks = 4000.0, 4
    shared = settings(high=6000, low=3000, step=800).share(1 / tasks)
    clock = Clock()
    controllers = [RateController(shared) for _ in range(tasks)]
    buckets = [TokenBucket(c.rate, clock=clock) for c in controllers]
    phase = [0.13, 0.41, 0.66, 0.92]
    next_sample = [1.0 + p for p in phase]
    end, consumed, max_lag = 0, 0.0, 0.0
    for i in range(1, 60_001):
        clock.now = now = i * DT
        for b in buckets:
            end += b.try_take(10**9, now)
        consumed = min(float(end), consumed + nu * DT)
        max_lag = max(max_lag, end - consumed)
        for k, c in enumerate(controllers):
            if now >= next_sample[k] - 1e-9:
                next_sample[k] += 1.0
                buckets[k].set_rate(c.step(now, int(end - consumed), buckets[k].taken).rate, now)
    assert max_lag <= 6000 + 800 * 1.0 + nu * 0.1


def test_the_ingest_pacing_stage_releases_acks_at_the_throttles_rate_in_order() -> None:
    from mqtt_kafka_sync.throttle.pacing import PacedAcks  # noqa: PLC0415 - the consumer of the interface

    clock = Clock()
    throttle = LagThrottle(settings(high=1000, low=500, step=100, rate_min=200, rate_max=200), clock=clock)
    sent: list[list[tuple[int, int, int]]] = []
    paced = PacedAcks(throttle, sent.append, clock=clock)
    paced.push([(1, pid, 1) for pid in range(1, 1001)])
    waits = []
    while paced.held and clock.now < 10:
        wait = paced.flush()
        waits.append(wait)
        clock.now += wait if wait is not None else 0.001
    released = [pid for batch in sent for _g, pid, _q in batch]
    assert released == list(range(1, 1001))
    assert clock.now == pytest.approx(1000 / 200, rel=0.02)  # 200/s, however the loop wakes
    assert all(w is None or 0 < w <= 0.1 for w in waits)
