"""Dead-letter records that Kafka never refuses for size: bounded headers, and a truncated copy.

Every data path dead-letters through here (the writer is ``kafka/dead_letter.py``). A dead-letter
record repeats the original's value, key and headers and adds its own (``dlq.*``). Two things
could make it larger than the original, and so larger than what Kafka takes: a detail that quotes
the input (a 600 KB key), and a record that was refused *because* of its size. So:

- :func:`clip` bounds any text a header repeats: its first :data:`DETAIL_MAX_BYTES` bytes and the
  full length;
- :func:`fit` keeps a record within the producer's ``message.max.bytes``: when it does not fit, the
  value is cut to what fits and the record says so in ``dlq.truncated=true``,
  ``dlq.original.bytes`` and ``dlq.original.sha256`` (the digest of the whole original value), so
  the copy can still be matched to what the device sent;
- :func:`stub` is the last resort when the dead-letter topic itself takes less than the producer
  (its ``max.message.bytes``): every header value, the key and the value cut to
  :data:`STUB_FIELD_BYTES`.
"""

from __future__ import annotations

import hashlib

from mqtt_kafka_sync.kafka.producer import Headers

DETAIL_MAX_BYTES = 256
"""The most of an input a ``dlq.detail`` header quotes."""
RECORD_OVERHEAD_BYTES = 1_024
"""Room left for the record's framing and the headers :func:`fit` adds."""
STUB_FIELD_BYTES = 1_024
"""What a stub keeps of the value, the key and each header value."""


def clip(text: str, limit: int = DETAIL_MAX_BYTES) -> str:
    """``text`` when it is at most ``limit`` UTF-8 bytes; else its first ``limit`` bytes and its size."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    head = data[:limit].decode("utf-8", "ignore")
    return f"{head}... ({len(data)} bytes in all)"


def record_size(value: bytes, key: bytes | None, headers: Headers) -> int:
    """The bytes librdkafka counts against ``message.max.bytes``, near enough (plus framing)."""
    size = len(value) + len(key or b"") + RECORD_OVERHEAD_BYTES
    for name, header in headers:
        size += len(name) + _length(header) + 8
    return size


def fit(
    value: bytes, key: bytes | None, headers: Headers, max_bytes: int
) -> tuple[bytes, bytes | None, Headers]:
    """The record as it is when it fits in ``max_bytes``; else with its value cut to fit (and said so).

    When even the key and headers do not fit, the result is :func:`stub`.
    """
    if record_size(value, key, headers) <= max_bytes:
        return value, key, headers
    said = [*headers, *_truncation_headers(value)]
    room = max_bytes - record_size(b"", key, said)
    if room < 0:
        return stub(value, key, headers)
    return value[:room], key, said


def stub(value: bytes, key: bytes | None, headers: Headers) -> tuple[bytes, bytes | None, Headers]:
    """A copy small enough for any topic: every part cut to :data:`STUB_FIELD_BYTES`."""
    limit = STUB_FIELD_BYTES
    kept: Headers = [
        (name, _cut(header, limit)) for name, header in headers if not name.startswith("dlq.original")
    ]
    kept = [(n, h) for n, h in kept if n != "dlq.truncated"]
    return value[:limit], None if key is None else key[:limit], [*kept, *_truncation_headers(value)]


def _truncation_headers(value: bytes) -> Headers:
    return [
        ("dlq.truncated", "true"),
        ("dlq.original.bytes", str(len(value))),
        ("dlq.original.sha256", hashlib.sha256(value).hexdigest()),
    ]


def _length(header: str | bytes | None) -> int:
    if header is None:
        return 0
    if isinstance(header, str):
        return len(header.encode("utf-8", "surrogatepass"))
    return len(header)


def _cut(header: str | bytes | None, limit: int) -> str | bytes | None:
    if isinstance(header, str):
        return clip(header, limit)
    if isinstance(header, bytes) and len(header) > limit:
        return header[:limit]
    return header
