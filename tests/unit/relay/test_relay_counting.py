"""The per-device command count the relay's end-to-end tests rely on."""

from __future__ import annotations

from mqtt_kafka_sync.sim.command_devices import Received, count_commands


def _got(device: str, *seqs: int, sender: str | None = None) -> list[Received]:
    return [Received(s, sender or device, f"t/{device}", 1, False, {}, None, None, None) for s in seqs]


def test_lost_duplicated_out_of_order_and_foreign_are_counted_per_device() -> None:
    report = count_commands(
        {
            "a": _got("a", 1, 2, 2, 4, 3, 5),  # 2 twice; 3 after 4
            "b": _got("b", 1, 3) + _got("b", 2, sender="c"),  # 2 lost; c's command at b
        },
        {"a": 5, "b": 3},
    )
    assert (report.expected, report.delivered, report.lost) == (8, 7, 1)
    assert (report.duplicated, report.out_of_order, report.foreign) == (1, 1, 1)
    assert report.devices["b"].lost_seqs == (2,)
    assert not report.ok


def test_a_redelivered_older_command_is_a_duplicate_not_a_reorder() -> None:
    report = count_commands({"a": _got("a", 1, 2, 3, 2, 3, 4)}, {"a": 4})
    assert report.ok and report.duplicated == 2 and report.out_of_order == 0


def test_a_device_that_received_nothing_lost_everything() -> None:
    report = count_commands({}, {"a": 3})
    assert report.lost == 3 and report.delivered == 0
