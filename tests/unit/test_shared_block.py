"""Shared blocks across processes: what a child writes the parent reads, and the lock excludes."""

from __future__ import annotations

import math
import pickle
import time

import pytest

from mqtt_kafka_sync.child_process import ChildEnd, channel, start_child
from mqtt_kafka_sync.shared_block import SharedBlock, doubles, integers

ROUNDS = 2000


def _write(block: SharedBlock[float]) -> None:
    block[:] = [1.5, math.nan, -3.0]


def _increment(block: SharedBlock[int], rounds: int) -> None:
    for _ in range(rounds):
        with block.get_lock():
            value = block[0]
            block[0] = value + 1


def _hold(block: SharedBlock[int], end: ChildEnd) -> None:
    conn = end.open()
    with block.get_lock():
        conn.send("held")
        time.sleep(0.5)
        block[:] = [7, 7]
    conn.close()


def test_what_a_child_writes_the_parent_reads() -> None:
    block = doubles(3)
    child = start_child(_write, name="writer", args=(block,), pass_fds=[block.fd])
    child.join(30)
    assert child.exitcode == 0
    first, missing, last = block[:]
    assert (first, last) == (1.5, -3.0) and math.isnan(missing)
    assert block[2] == -3.0 and len(block) == 3


def test_the_lock_excludes_another_process() -> None:
    block = integers(2)
    reader, writer = channel(duplex=False)
    child = start_child(_hold, name="holder", args=(block, writer), pass_fds=[block.fd, writer.fd])
    writer.close()
    assert reader.recv() == "held"
    start = time.monotonic()
    assert block[:] == [7, 7]  # waited for the child's whole write
    assert time.monotonic() - start > 0.3
    child.join(30)


def test_read_modify_writes_of_two_processes_lose_nothing() -> None:
    block = integers(1)
    child = start_child(_increment, name="incrementer", args=(block, ROUNDS), pass_fds=[block.fd])
    _increment(block, ROUNDS)
    child.join(60)
    assert child.exitcode == 0
    assert block[0] == 2 * ROUNDS


def test_the_lock_is_reentrant_within_a_thread() -> None:
    block = doubles(2)
    with block.get_lock(), block.get_lock():
        block[:] = [block[0] + 1, 2.0]
    assert block[:] == [1.0, 2.0]


def test_a_block_pickles_as_its_fd_and_maps_the_same_memory() -> None:
    block = integers(2)
    again = pickle.loads(pickle.dumps(block))  # noqa: S301 - our own bytes
    again[1] = 5
    assert block[:] == [0, 5] and again.fd == block.fd


def test_values_of_the_wrong_type_are_refused() -> None:
    block = integers(1)
    with pytest.raises(TypeError):
        block[:] = [1.5]  # type: ignore[list-item]
