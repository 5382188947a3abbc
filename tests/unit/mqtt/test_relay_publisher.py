"""The relay's own encoding of PUBLISH properties reads back, with paho's decoder, as what was meant."""

from __future__ import annotations

from dataclasses import replace
from typing import Protocol, cast

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from mqtt_kafka_sync.mqtt.publisher import Command, command_properties

COMMAND = Command(
    route="cmd",
    topic="plants/p01/devices/d0001/commands",
    payload=b"{}",
    qos=1,
    retain=False,
    user_properties=(("site", "plant-a"), ("site", "again"), ("empty", ""), ("ünï", "cødé")),
    correlation_data=b"commands/3/42",
    response_topic="plants/p01/devices/d0001/commands/response",
    expiry_seconds=300,
)


class PublishProperties(Protocol):
    """What paho's decoder sets on a PUBLISH's :class:`Properties`: attributes by name, undeclared
    (each one is there only when the packet carried it)."""

    MessageExpiryInterval: int
    ResponseTopic: str
    CorrelationData: bytes
    UserProperty: list[tuple[str, str]]


def _decode(packed: bytes) -> PublishProperties:
    props = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
    decoded, length = props.unpack(packed)  # type: ignore[no-untyped-call]  # paho leaves it unannotated
    assert length == len(packed)
    return cast(PublishProperties, decoded)


def test_every_property_reads_back() -> None:
    props = _decode(command_properties(COMMAND))
    assert props.MessageExpiryInterval == 300
    assert props.ResponseTopic == "plants/p01/devices/d0001/commands/response"
    assert props.CorrelationData == b"commands/3/42"
    assert props.UserProperty == [("site", "plant-a"), ("site", "again"), ("empty", ""), ("ünï", "cødé")]


def test_only_what_is_set_is_sent() -> None:
    props = _decode(
        command_properties(replace(COMMAND, user_properties=(), response_topic=None, expiry_seconds=None))
    )
    assert props.CorrelationData == b"commands/3/42"
    assert not hasattr(props, "MessageExpiryInterval") and not hasattr(props, "ResponseTopic")
    assert not hasattr(props, "UserProperty")


@pytest.mark.parametrize("size", [0, 100, 127, 128, 16_383, 16_384, 60_000])
def test_property_lengths_use_variable_byte_integers(size: int) -> None:
    command = replace(
        COMMAND, user_properties=(("pad", "x" * size),), response_topic=None, expiry_seconds=None
    )
    packed = command_properties(command)
    assert _decode(packed).UserProperty == [("pad", "x" * size)]


def test_a_property_longer_than_mqtt_allows_is_refused() -> None:
    with pytest.raises(ValueError, match="65,535"):
        command_properties(replace(COMMAND, correlation_data=b"x" * 70_000))
