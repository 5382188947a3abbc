"""The offset tracker stores an offset only when every earlier record of its partition finished."""

from __future__ import annotations

import pytest

from mqtt_kafka_sync.relay.offsets import OffsetTracker

A, B = ("commands", 0), ("commands", 1)


def test_in_order_finishes_release_one_by_one() -> None:
    tracker = OffsetTracker()
    tracker.assign(A)
    first, second = tracker.add(A, 10), tracker.add(A, 11)
    assert tracker.finish(first) == 11
    assert tracker.finish(second) == 12
    assert tracker.finished == 2 and tracker.unfinished() == 0


def test_a_later_finish_waits_for_the_earlier_one() -> None:
    tracker = OffsetTracker()
    tracker.assign(A)
    pending = [tracker.add(A, offset) for offset in (5, 6, 7, 9)]  # 8 was never read (compaction)
    assert tracker.finish(pending[2]) is None
    assert tracker.finish(pending[1]) is None
    assert tracker.unfinished() == 4
    assert tracker.finish(pending[0]) == 8  # 5, 6 and 7 at once
    assert tracker.finish(pending[3]) == 10


def test_partitions_are_independent() -> None:
    tracker = OffsetTracker()
    tracker.assign(A)
    tracker.assign(B)
    a0, b0 = tracker.add(A, 0), tracker.add(B, 0)
    tracker.add(A, 1)
    assert tracker.finish(b0) == 1
    assert tracker.unfinished({A}) == 2 and tracker.unfinished({B}) == 0
    assert tracker.finish(a0) == 1


def test_acknowledgements_after_a_revocation_are_ignored_even_after_reassignment() -> None:
    tracker = OffsetTracker()
    tracker.assign(A)
    old = tracker.add(A, 100)
    assert tracker.revoke(A) == 1
    assert not tracker.assigned(A)
    assert tracker.finish(old) is None
    tracker.assign(A)  # assigned again, resuming from the committed offset
    new = tracker.add(A, 100)
    assert tracker.finish(old) is None  # the stale record does not release the new one
    assert tracker.unfinished({A}) == 1
    assert tracker.finish(new) == 101


def test_offsets_must_grow() -> None:
    tracker = OffsetTracker()
    tracker.assign(A)
    tracker.add(A, 3)
    with pytest.raises(ValueError, match="added after"):
        tracker.add(A, 3)


def test_a_batch_finishes_as_one_by_one_would_with_one_offset_per_partition() -> None:
    tracker = OffsetTracker()
    tracker.assign(A)
    tracker.assign(B)
    a = [tracker.add(A, offset) for offset in range(5)]
    b = [tracker.add(B, offset) for offset in range(3)]
    assert tracker.finish_all([a[0], b[1], a[1], a[3]]) == {A: 2}  # B waits for its offset 0; A for 2
    assert tracker.finish_all([b[0], a[2]]) == {A: 4, B: 2}
    assert tracker.finish_all([]) == {}
    assert tracker.unfinished() == 2 and tracker.finished == 6


def test_a_batch_skips_records_of_an_earlier_assignment_of_the_partition() -> None:
    tracker = OffsetTracker()
    tracker.assign(A)
    old = tracker.add(A, 7)
    tracker.revoke(A)
    tracker.assign(A)  # assigned again: records from offset 7 are read again
    new = tracker.add(A, 7)
    assert tracker.finish_all([old]) == {}
    assert tracker.finish_all([old, new]) == {A: 8}


def test_a_record_of_a_partition_not_assigned_is_not_tracked() -> None:
    with pytest.raises(KeyError):
        OffsetTracker().add(A, 0)
