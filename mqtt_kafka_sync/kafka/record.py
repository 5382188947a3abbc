"""What the relay, the replay and the dead-letter writer read of a Kafka record.

The accessors of :class:`confluent_kafka.Message`, as a Protocol: the relay hands on the
consumer's messages as they are, the replay its own
:class:`~mqtt_kafka_sync.replay.target.SourceRecord`, built once per record read.
"""

from __future__ import annotations

from typing import Protocol

KafkaHeaders = list[tuple[str, bytes | None]]
RecordHeaders = dict[str, str | bytes | None] | list[tuple[str, str | bytes | None]]
"""Headers as :meth:`confluent_kafka.Message.headers` gives them (a list, or a dict)."""


class KafkaRecord(Protocol):
    """A Kafka record, by the accessors of :class:`confluent_kafka.Message`."""

    def topic(self) -> str | None: ...
    def partition(self) -> int | None: ...
    def offset(self) -> int | None: ...
    def key(self) -> bytes | None: ...
    def value(self) -> bytes | None: ...
    def headers(self) -> RecordHeaders | None: ...
    def timestamp(self) -> tuple[int, int]:
        """(``TIMESTAMP_*`` kind, epoch milliseconds); the kind ``TIMESTAMP_NOT_AVAILABLE``: age unknown."""
        ...


def kafka_headers(record: KafkaRecord) -> KafkaHeaders:
    """The record's headers as (name, bytes or None) pairs, in order."""
    headers = record.headers()
    if not headers:
        return []
    items = headers.items() if isinstance(headers, dict) else headers
    return [(name, value.encode() if isinstance(value, str) else value) for name, value in items]
