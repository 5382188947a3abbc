"""The relay's per-command shortcuts give what the general paths give: the rendered topics cached
per record key, the usual PUBLISH properties as the general encoder writes them; and records read
in batches, commands published in bursts of a quarter window."""

from __future__ import annotations

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from mqtt_kafka_sync.config.model import RelayRouteConfig
from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.mqtt import packets
from mqtt_kafka_sync.mqtt.publisher import Command, command_properties
from mqtt_kafka_sync.relay import routes as routes_module
from mqtt_kafka_sync.relay.routes import CommandRouter

NOW = 1_800_000_000.0
TOPIC = "commands"
ROUTE = RelayRouteConfig(
    name="cmd", kafka_topic=TOPIC, kafka_key="{plant}.{device}", mqtt_topic="p/{plant}/d/{device}/c"
)


def record(offset: int, key: bytes, headers: list[tuple[str, str | bytes | None]] | None = None) -> Message:
    return Message(
        topic=TOPIC, partition=0, offset=offset, key=key, value=b"{}", headers=headers,
        timestamp=(TIMESTAMP_CREATE_TIME, int(NOW * 1000)),
    )  # fmt: skip


def test_a_key_seen_before_gets_the_same_topics_and_bad_keys_are_refused_every_time() -> None:
    router = CommandRouter([ROUTE])
    first = router.command(record(0, key=b"p01.d1"), NOW)
    again = router.command(record(1, key=b"p01.d1"), NOW)
    other = router.command(record(2, key=b"p01.d2"), NOW)
    assert first.topic == again.topic == "p/p01/d/d1/c" and other.topic == "p/p01/d/d2/c"
    for _ in range(2):
        with pytest.raises(CommandError) as caught:
            router.command(record(3, key=b"p01.#"), NOW)
        assert caught.value.reason == "unsafe-placeholder"


def test_header_placeholders_are_read_from_each_record_not_cached() -> None:
    route = RelayRouteConfig(
        name="cmd", kafka_topic=TOPIC, kafka_key="{plant}.{device}", mqtt_topic="p/{plant}/m/{header.machine}"
    )
    router = CommandRouter([route])
    one = router.command(record(0, key=b"p01.d1", headers=[("machine", b"m1")]), NOW)
    two = router.command(record(1, key=b"p01.d1", headers=[("machine", b"m2")]), NOW)
    assert (one.topic, two.topic) == ("p/p01/m/m1", "p/p01/m/m2")


def test_the_key_cache_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(routes_module, "KEY_CACHE_SIZE", 3)
    router = CommandRouter([ROUTE])
    for n in range(10):
        assert router.command(record(n, key=f"p01.d{n}".encode()), NOW).topic == f"p/p01/d/d{n}/c"
    assert len(router._by_key) <= 3


def _general(command: Command) -> bytes:
    props: list[tuple[int, object]] = []
    if command.expiry_seconds is not None:
        props.append((packets.PROP_MESSAGE_EXPIRY, command.expiry_seconds))
    props.append((packets.PROP_CORRELATION_DATA, command.correlation_data))
    return packets.encode_properties(props)


@pytest.mark.parametrize("expiry", [None, 0, 1, 300, 2**32 - 1])
@pytest.mark.parametrize("size", [0, 1, 15, 200, 0xFFFF])
def test_the_usual_properties_encode_as_the_general_encoder_does(expiry: int | None, size: int) -> None:
    command = Command("r", "a/b", b"p", 1, False, (), b"c" * size, None, expiry)
    assert command_properties(command) == _general(command)


def test_records_are_read_in_batches_yet_consume_is_called_every_read_interval_with_a_full_buffer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mqtt_kafka_sync.relay import task as task_module  # noqa: PLC0415
    from tests.unit.relay.test_relay_task import P0, Harness  # noqa: PLC0415

    monkeypatch.setattr(task_module, "WAIT_S", 0.001)
    monkeypatch.setattr(task_module, "READ_EVERY_S", 60.0)  # no step here takes that long
    h = Harness()
    h.connect(receive_maximum=1)  # one command in flight and none acknowledged: the buffer stays full
    h.kafka.assign(P0)
    h.feed(P0, count=3 * task_module.REFILL_BELOW)
    calls: list[int] = []
    consume = h.kafka.consume

    def counted(limit: int, timeout: float) -> list[Message]:
        calls.append(limit)
        return consume(limit, timeout)

    monkeypatch.setattr(h.kafka, "consume", counted)
    h.steps(2)
    assert len(h.task._buffer) >= task_module.REFILL_BELOW
    calls.clear()
    h.steps(50)
    assert len(calls) == 0, "read again with a full buffer, before READ_EVERY_S passed"
    h.skew += task_module.READ_EVERY_S
    h.steps(1)
    assert len(calls) == 1, "consume() not called for READ_EVERY_S: the consumer would leave its group"


def test_commands_go_out_a_quarter_window_at_a_time_with_one_wake_up_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from mqtt_kafka_sync.mqtt.events import Acks  # noqa: PLC0415
    from mqtt_kafka_sync.relay import task as task_module  # noqa: PLC0415
    from tests.unit.relay.test_relay_task import P0, Harness  # noqa: PLC0415

    monkeypatch.setattr(task_module, "WAIT_S", 0.001)
    h = Harness()
    h.connect(receive_maximum=8)  # bursts of 2
    h.kafka.assign(P0)
    h.feed(P0, count=40)
    h.steps(3)
    assert [mid for mid, _ in h.publisher.sent] == list(range(1, 9)) and h.publisher.wakes == 1
    h.events.put(Acks([1]))
    h.steps(2)
    assert len(h.publisher.sent) == 8, "one free place is less than a burst"
    assert h.kafka.stored == {P0: 1}, "yet the acknowledged command's offset is stored"
    h.events.put(Acks([2, 3]))
    h.steps(2)
    assert len(h.publisher.sent) == 11 and h.publisher.wakes == 2
    assert h.kafka.stored == {P0: 3}
    h.events.put(Acks(list(range(4, 12))))
    h.steps(2)
    assert h.kafka.stored == {P0: 11} and h.task.stats.delivered == 11


def test_a_last_few_records_go_out_without_waiting_for_a_burst(monkeypatch: pytest.MonkeyPatch) -> None:
    from mqtt_kafka_sync.relay import task as task_module  # noqa: PLC0415
    from tests.unit.relay.test_relay_task import P0, Harness  # noqa: PLC0415

    monkeypatch.setattr(task_module, "WAIT_S", 0.001)
    h = Harness()
    h.connect(receive_maximum=100)
    h.kafka.assign(P0)
    h.feed(P0, count=99)
    h.steps(2)
    assert len(h.publisher.sent) == 99
    h.feed(P0, count=1)  # one place free, one record: it goes now
    h.steps(2)
    assert len(h.publisher.sent) == 100
