from __future__ import annotations

import json

import pytest

from mqtt_kafka_sync.sim.payload import (
    PayloadError,
    device_ids,
    device_topic,
    make_payload,
    parse_payload,
    split_device_id,
)


def fixed_clock() -> float:
    return 1_718_000_000.123456


def test_payload_round_trips() -> None:
    payload = make_payload("p01.d0001", 7, 200, clock=fixed_clock)
    assert parse_payload(payload) == ("p01.d0001", 7, 1_718_000_000.123456)
    body = json.loads(payload)
    assert set(body) == {"device", "seq", "ts", "value", "pad"}
    assert isinstance(body["value"], float)


@pytest.mark.parametrize("size", [0, 50, 80, 85, 86, 90, 95, 100, 200, 1000, 65_536])
def test_payload_is_exactly_the_requested_size_when_it_can_be(size: int) -> None:
    unpadded = len(make_payload("p01.d0001", 12345, 0, clock=fixed_clock))
    payload = make_payload("p01.d0001", 12345, size, clock=fixed_clock)
    assert len(payload) == max(size, unpadded)
    assert parse_payload(payload) == ("p01.d0001", 12345, fixed_clock())


def test_payload_uses_the_clock_at_send() -> None:
    assert parse_payload(make_payload("p01.d0001", 1, 0))[2] > 1_700_000_000


@pytest.mark.parametrize(
    ("payload", "problem"),
    [
        (b"not json {", "not JSON"),
        (b"\xff\xfe", "not JSON"),
        (b"[1, 2]", "not a JSON object"),
        (b'{"seq": 1, "ts": 1.0}', "'device'"),
        (b'{"device": "p01.d0001", "seq": "1", "ts": 1.0}', "'seq'"),
        (b'{"device": "p01.d0001", "seq": true, "ts": 1.0}', "'seq'"),
        (b'{"device": "p01.d0001", "seq": 1}', "'ts'"),
    ],
)
def test_parse_rejects_what_the_simulator_never_sends(payload: bytes, problem: str) -> None:
    with pytest.raises(PayloadError, match=problem):
        parse_payload(payload)


def test_parse_accepts_an_integer_ts() -> None:
    assert parse_payload(b'{"device": "p01.d0001", "seq": 1, "ts": 0, "value": 1.5}') == ("p01.d0001", 1, 0.0)


@pytest.mark.parametrize(
    ("count", "plants", "expected"),
    [
        (0, None, []),
        (3, None, ["p01.d0001", "p01.d0002", "p01.d0003"]),
        (4, 2, ["p01.d0001", "p01.d0002", "p02.d0003", "p02.d0004"]),
        (3, 5, ["p01.d0001", "p02.d0002", "p03.d0003"]),
    ],
)
def test_device_ids(count: int, plants: int | None, expected: list[str]) -> None:
    assert device_ids(count, plants) == expected


def test_device_ids_default_to_a_plant_per_hundred_devices() -> None:
    ids = device_ids(200)
    assert len(set(ids)) == 200
    assert ids[99] == "p01.d0100" and ids[100] == "p02.d0101"
    assert device_ids(10_000)[-1] == "p100.d10000"


def test_topic_and_key_of_a_device() -> None:
    assert split_device_id("p01.d0001") == ("p01", "d0001")
    assert device_topic("p01.d0001") == "plants/p01/devices/d0001/telemetry"
    assert device_topic("p02.d0007", "t1/plants/{plant}/devices/{device}/telemetry") == (
        "t1/plants/p02/devices/d0007/telemetry"
    )
    with pytest.raises(ValueError, match=r"p01\.d0001"):
        split_device_id("nodot")
