"""``throttle.*``: the source connector's lag-driven throttle: its keys, and its checks.

Naming consumer groups in ``throttle.lag.groups`` turns it on: the tasks then pace their MQTT
acknowledgements so that those groups' lag, on the topics the routes write, stays near
``throttle.lag.high`` (docs/replay.md explains the controller and how to choose each value).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, Protocol

from mqtt_kafka_sync.config.keyspec import KeySpec
from mqtt_kafka_sync.config.model import ThrottleConfig

GROUPS = "throttle.lag.groups"

# -- defaults: the one place for them (the connector keys below and ``mqtt-kafka-sync replay``) --
STEP_DIVISOR = 25
"""Default step: ``lag.high / (25 * interval)``, so the overshoot bound ``2 * step * T`` is 8% of high."""
RATE_MAX = 1_000_000.0
"""Default cap, records/s: high enough to mean "none"."""
LAG_INTERVAL_S = 2.0
"""Default seconds between lag reads."""
MODE: Final = "enforce"
REPLAY_RATE_MIN = 100.0
"""The replay's default floor, records/s: it has no live traffic to protect, the floor only keeps it
moving (a connector has no default: its floor must cover its live traffic)."""


def default_lag_low(lag_high: int) -> int:
    """The low mark when none is given: half of the high mark."""
    return lag_high // 2


def default_step(lag_high: int, interval: float) -> float:
    """The step when none is given: ``lag_high / (STEP_DIVISOR * interval)``, at least 1 record/s."""
    return max(1.0, lag_high / (STEP_DIVISOR * interval))


THROTTLE_KEYS = (
    KeySpec(
        GROUPS,
        "list",
        "Comma-separated consumer groups whose lag steers the rate at which tasks acknowledge MQTT "
        "messages (and so the rate the broker sends them). Lag is read on the topics the routes write; "
        "a group's lag is the sum over those partitions, and the largest among the groups counts. "
        "Needs `mqtt.qos` 1 or 2: QoS 0 has no acknowledgements to hold back.",
        "alerting,historian",
        default_doc="none: no throttling",
        pattern=r"[A-Za-z0-9_.-]+",
        pattern_doc="letters, digits, '_', '.' and '-'",
    ),
    KeySpec(
        "throttle.lag.high",
        "int",
        "High mark, records: while a group is further behind, the rate halves every interval. Lag "
        "overshoots it by at most `2 * (throttle.step.max * interval + S)` plus the records in flight "
        "(S: what the groups' commit interval hides); see docs/replay.md.",
        "50000",
        default_doc="none; required with `throttle.lag.groups`",
        minimum=1,
    ),
    KeySpec(
        "throttle.lag.low",
        "int",
        "Low mark, records: while every group is less far behind, and not falling further behind, the "
        "rate grows by `throttle.step.max` every interval. Between the marks the rate holds.",
        "20000",
        default_doc="half of `throttle.lag.high`",
        minimum=0,
    ),
    KeySpec(
        "throttle.rate.min",
        "float",
        "Floor, messages/s for the connector (its tasks share it): acknowledgements never go slower, "
        "whatever the lag. Set it above your live traffic so only backlog waits.",
        "2000",
        default_doc="none; required with `throttle.lag.groups`",
        minimum=1,
    ),
    KeySpec(
        "throttle.rate.max",
        "float",
        "Cap, messages/s for the connector (its tasks share it).",
        "50000",
        default=f"{RATE_MAX:.0f}",
        minimum=1,
    ),
    KeySpec(
        "throttle.step.max",
        "float",
        "Most the rate may rise in one interval, messages/s for the connector: the additive increase. "
        "Larger recovers faster and overshoots the high mark more.",
        "1000",
        default_doc=f"`throttle.lag.high / ({STEP_DIVISOR} * throttle.lag.interval.seconds)`",
        minimum=0.001,
    ),
    KeySpec(
        "throttle.mode",
        "enum",
        "`enforce` paces acknowledgements; `observe` only computes the rate it would set (for "
        "metrics), to try the settings on live traffic first.",
        "observe",
        default=MODE,
        choices=("enforce", "observe"),
    ),
    KeySpec(
        "throttle.lag.interval.seconds",
        "float",
        "Seconds between lag reads (each one a few admin requests per task). Lag is only as fresh as "
        "the groups' commits, so reading much more often than they commit adds little.",
        "2",
        default=f"{LAG_INTERVAL_S:g}",
        minimum=0.1,
        maximum=3600,
    ),
)


class Problems(Protocol):
    """Where the builder reports what is wrong (the source builder's problem list)."""

    def add(self, key: str, problem: str, fix: str = "") -> None: ...


def throttle_config(
    values: Mapping[str, Any], raw: Mapping[str, str], problems: Problems
) -> ThrottleConfig | None:
    """From the typed ``throttle.*`` values (``raw``: the file's keys); None when throttling is off,
    or after a problem."""
    groups: tuple[str, ...] | None = values[GROUPS]
    if groups is None:
        if raw.get(GROUPS, "").strip():
            return None  # set, but wrong: reported already
        for key in (k.key for k in THROTTLE_KEYS[1:]):
            if raw.get(key, "").strip():
                problems.add(key, f"is only used with {GROUPS}", f"set {GROUPS}, or remove {key}")
        return None
    ok = True
    for key in ("throttle.lag.high", "throttle.rate.min"):
        if values[key] is None and not raw.get(key, "").strip():
            problems.add(key, f"is required with {GROUPS}", f"set it, e.g. {key}={_example(key)}")
            ok = False
    if values["mqtt.qos"] == 0:
        fix = f"use mqtt.qos=1 or 2, or remove {GROUPS}"
        problems.add(GROUPS, "the throttle holds back acknowledgements, and QoS 0 has none", fix)
        ok = False
    high: int | None = values["throttle.lag.high"]
    low: int | None = values["throttle.lag.low"]
    rate_min: float | None = values["throttle.rate.min"]
    rate_max: float | None = values["throttle.rate.max"]
    interval: float | None = values["throttle.lag.interval.seconds"]
    if high is not None and low is not None and low >= high:
        problems.add("throttle.lag.low", f"{low} is not below throttle.lag.high ({high})", "lower it")
        ok = False
    if rate_min is not None and rate_max is not None and rate_min > rate_max:
        problems.add(
            "throttle.rate.min", f"{rate_min:g} is above throttle.rate.max ({rate_max:g})", "lower it"
        )
        ok = False
    if not ok or high is None or rate_min is None or rate_max is None or interval is None:
        return None
    if duplicated := [g for g in dict.fromkeys(groups) if groups.count(g) > 1]:
        problems.add(GROUPS, f"group {duplicated[0]!r} is listed twice", "list each group once")
        return None
    step: float | None = values["throttle.step.max"]
    return ThrottleConfig(
        groups=groups,
        lag_high=high,
        lag_low=default_lag_low(high) if low is None else low,
        rate_min=rate_min,
        rate_max=rate_max,
        step_max=step if step is not None else default_step(high, interval),
        interval_seconds=interval,
        mode=values["throttle.mode"] or MODE,
    )


def _example(key: str) -> str:
    return next(k.example for k in THROTTLE_KEYS if k.key == key)
