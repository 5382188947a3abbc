"""Bounds of dead-letter records: clipped details, truncated copies that fit, stubs."""

from __future__ import annotations

import hashlib

import pytest

from mqtt_kafka_sync.kafka.dead_letter_copy import (
    DETAIL_MAX_BYTES,
    STUB_FIELD_BYTES,
    clip,
    fit,
    record_size,
    stub,
)
from mqtt_kafka_sync.kafka.producer import Headers


@pytest.mark.parametrize(
    "length", [0, 1, DETAIL_MAX_BYTES - 1, DETAIL_MAX_BYTES, DETAIL_MAX_BYTES + 1, 600_000]
)
def test_clip_keeps_short_text_and_bounds_long_text_with_its_length(length: int) -> None:
    text = "k" * length
    clipped = clip(text)
    if length <= DETAIL_MAX_BYTES:
        assert clipped == text
    else:
        assert clipped.startswith("k" * DETAIL_MAX_BYTES)
        assert f"({length} bytes in all)" in clipped
        assert len(clipped.encode()) < DETAIL_MAX_BYTES + 40


def test_clip_never_splits_a_character() -> None:
    clipped = clip("é" * 300)  # two bytes each: the cut falls inside one
    assert clipped.startswith("é" * 128)
    assert "(600 bytes in all)" in clipped


@pytest.mark.parametrize("limit", [5_000, 100_000, 1_000_000])
@pytest.mark.parametrize("size", [0, 3_000, 99_000, 2_000_000])
def test_fit_returns_a_record_within_the_limit(limit: int, size: int) -> None:
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    headers: Headers = [("mqtt.topic", "a/b"), ("dlq.reason", "kafka-rejected")]
    out_value, key, out_headers = fit(value, b"a/b", headers, limit)
    assert record_size(out_value, key, out_headers) <= limit
    if record_size(value, b"a/b", headers) <= limit:
        assert (out_value, out_headers) == (value, headers)
    else:
        named = dict(out_headers)
        assert named["dlq.truncated"] == "true"
        assert named["dlq.original.bytes"] == str(size)
        assert named["dlq.original.sha256"] == hashlib.sha256(value).hexdigest()
        assert value.startswith(out_value)


def test_stub_cuts_every_part_and_replaces_earlier_truncation_headers() -> None:
    value = b"v" * 10_000
    headers: Headers = [("h", "x" * 5_000), ("b", b"y" * 5_000), ("n", None), ("dlq.truncated", "true")]
    out_value, key, out_headers = stub(value, b"k" * 5_000, headers)
    assert len(out_value) == len(key or b"") == STUB_FIELD_BYTES
    named = dict(out_headers)
    assert len(named["b"] or b"") == STUB_FIELD_BYTES
    assert named["n"] is None
    assert [n for n, _ in out_headers].count("dlq.truncated") == 1
    assert named["dlq.original.bytes"] == "10000"
