"""The re-send rule both paho publishers follow (the relay's window, the device simulator's clients)."""

from __future__ import annotations

from mqtt_kafka_sync.mqtt.resend import ResendGate


def test_nothing_goes_out_before_the_first_connack() -> None:
    gate = ResendGate(10)
    assert not gate.allows(0)
    gate.connected(0)
    assert gate.allows(0) and gate.size == 10


def test_the_window_is_the_smaller_of_max_inflight_and_receive_maximum() -> None:
    gate = ResendGate(10)
    gate.connected(0, receive_maximum=3)
    assert gate.size == 3 and gate.allows(2) and not gate.allows(3)
    gate.disconnected(0)
    gate.connected(0)  # no Receive Maximum: 65535
    assert gate.size == 10
    gate.connected(0, receive_maximum=0)
    assert gate.size == 1


def test_nothing_new_before_every_resent_publish_is_acknowledged() -> None:
    gate = ResendGate(10)
    gate.connected(0)
    gate.disconnected(2)
    assert not gate.allows(2) and gate.resending
    gate.connected(2)
    assert not gate.allows(2) and not gate.allows(1)
    assert not gate.settle(1)
    assert gate.settle(0) and gate.allows(0)
    assert not gate.settle(0)


def test_a_publish_handed_over_while_disconnected_is_resent_first() -> None:
    gate = ResendGate(10)
    gate.connected(0)
    gate.disconnected(0)
    assert not gate.resending
    gate.connected(1)  # paho queued it (NO_CONN) and sends it after the CONNACK
    assert gate.resending and not gate.allows(1)


def test_no_settling_while_disconnected() -> None:
    gate = ResendGate(10)
    gate.connected(0)
    gate.disconnected(1)
    assert not gate.settle(0) and gate.resending
    gate.connected(0)
    assert gate.settle(0) and gate.allows(0)
