"""Who adopts a dead member's session: the next online member after it, once the delay passed."""

from __future__ import annotations

import pytest

from mqtt_kafka_sync.ingest.takeover import Membership, membership_payload
from mqtt_kafka_sync.mqtt.packets import Publish


def _record(membership: Membership, client_id: str, state: str | None, now: float) -> None:
    payload = membership_payload(state, ("plants/#",)) if state else b""
    topic = f"mqtt-kafka-sync/members/{membership.group}/{client_id}"
    membership.update(Publish(topic, payload, 0, True, False, 0), now)


@pytest.mark.parametrize(
    ("me", "states", "now", "expected"),
    [
        ("w-1", {"w-0": "offline", "w-1": "online", "w-2": "online"}, 20.0, ["w-0"]),
        ("w-2", {"w-0": "offline", "w-1": "online", "w-2": "online"}, 20.0, []),
        ("w-1", {"w-0": "offline", "w-1": "online"}, 5.0, []),  # within the delay
        ("w-0", {"w-2": "stopped", "w-0": "online", "w-1": "online"}, 20.0, ["w-2"]),  # wraps around
        ("w-1", {"w-0": "offline", "w-2": "offline", "w-1": "online"}, 20.0, ["w-0", "w-2"]),
        ("w-1", {"w-0": "online", "w-1": "online"}, 20.0, []),
    ],
)
def test_adopter_is_the_next_online_member(
    me: str, states: dict[str, str], now: float, expected: list[str]
) -> None:
    membership = Membership("g", me)
    for client_id, state in states.items():
        _record(membership, client_id, state, 0.0)
    assert sorted(m.client_id for m in membership.orphans_for_me(now, delay=10.0)) == expected


def test_cleared_record_and_return_end_the_orphan() -> None:
    membership = Membership("g", "w-1")
    _record(membership, "w-0", "offline", 0.0)
    _record(membership, "w-1", "online", 0.0)
    assert [m.client_id for m in membership.orphans_for_me(20.0, 10.0)] == ["w-0"]
    _record(membership, "w-0", "online", 21.0)
    assert membership.orphans_for_me(40.0, 10.0) == []
    _record(membership, "w-0", "offline", 41.0)
    assert membership.orphans_for_me(45.0, 10.0) == []  # the delay restarts
    _record(membership, "w-0", None, 46.0)
    assert membership.orphans_for_me(100.0, 10.0) == []
    assert membership.orphans_for_me(100.0, 10.0) == []
