"""What one unacknowledged message costs the byte window (``mqtt.receive.maximum.bytes``)."""

from __future__ import annotations

import pytest

from mqtt_kafka_sync.mqtt.packets import Publish
from mqtt_kafka_sync.mqtt.subscriber import message_bytes


@pytest.mark.parametrize(
    ("topic", "payload", "props", "expected"),
    [
        ("a/b", b"", [], 9),
        ("a/b", b"x" * 10_000, [], 10_009),
        ("t" * 60_000, b"v" * 64, [], 180_064),  # long topics count: they are kept three times
        ("a", b"", [("k" * 100, "v" * 50_000)], 50_103),
    ],
)
def test_topics_and_properties_count_beside_the_payload(
    topic: str, payload: bytes, props: list[tuple[str, str]], expected: int
) -> None:
    assert message_bytes(Publish(topic, payload, 1, False, False, 1, props)) == expected


def test_the_default_window_holds_at_most_about_90_messages_with_60_kb_topics() -> None:
    """With the default 16 MiB, 4,000 messages of 60 KB topics held 540 MB; now about 93 fit."""
    cost = message_bytes(Publish("t" * 60_000, b"v" * 64, 1, False, False, 1, []))
    assert 16 * 2**20 // cost <= 100
