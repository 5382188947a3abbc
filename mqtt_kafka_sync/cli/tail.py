"""``mqtt-kafka-sync tail TOPIC``: print a topic's records for people, whatever format their values use.

Each record is two or three lines: where it is (partition, offset, key, timestamp), its headers, and
its value decoded (Avro by fingerprint or registry id, JSON, text or bytes). The consumer is assigned
every partition and joins no group, so it commits nothing and disturbs no one.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from confluent_kafka import (
    OFFSET_BEGINNING,
    OFFSET_END,
    Consumer,
    KafkaError,
    KafkaException,
    Message,
    TopicPartition,
)

from mqtt_kafka_sync.cli.kafka_options import DEFAULT_BOOTSTRAP, add_command_config, kafka_of, unreachable
from mqtt_kafka_sync.codec.decode import Decoded, ValueDecoder
from mqtt_kafka_sync.codec.schema import AvroSchema, SchemaStore, parse_schema_text
from mqtt_kafka_sync.config.model import Secret
from mqtt_kafka_sync.errors import SyncError
from mqtt_kafka_sync.kafka.settings import reader_settings

USER_INFO_ENV = "SCHEMA_REGISTRY_USER_INFO"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``tail`` command."""
    tail = subparsers.add_parser(
        "tail",
        help="print the records of a Kafka topic, values decoded (Avro, JSON, text, bytes)",
        description="Prints each record's partition, offset, key, timestamp, headers and value. Avro "
        "single-object values are decoded with the .avsc file in --schemas whose fingerprint they "
        "carry; registry values with the schema --registry has under their id (basic auth from "
        f"${USER_INFO_ENV}, as user:password).",
    )
    tail.add_argument("topic", metavar="TOPIC")
    tail.add_argument("--bootstrap", default=DEFAULT_BOOTSTRAP, help="Kafka (default %(default)s)")
    tail.add_argument(
        "--schemas", type=Path, default=Path("schemas"), help="folder of .avsc files (default %(default)s)"
    )
    tail.add_argument("--registry", metavar="URL", help="Confluent-compatible schema registry")
    tail.add_argument("--from-beginning", action="store_true", help="start at the oldest record, not the end")
    tail.add_argument("--max", type=int, default=None, metavar="N", help="stop after N records")
    tail.add_argument(
        "--idle", type=float, default=None, metavar="SECONDS", help="stop after SECONDS without a new record"
    )
    add_command_config(tail)
    tail.set_defaults(func=_tail)


def _tail(args: argparse.Namespace) -> int:
    decoder = ValueDecoder(_store(args.schemas), _registry(args.registry))
    consumer = Consumer(reader_settings(kafka_of(args), "tail"), logger=logging.getLogger("librdkafka"))
    try:
        try:
            metadata = consumer.list_topics(args.topic, timeout=10)
        except KafkaException as exc:
            raise SyncError(f"cannot read {args.topic} at {args.bootstrap}: {unreachable(exc)}") from None
        info = metadata.topics.get(args.topic)
        if info is None or info.error is not None or not info.partitions:
            print(f"error: topic {args.topic!r} does not exist at {args.bootstrap}", file=sys.stderr)
            return 1
        start = OFFSET_BEGINNING if args.from_beginning else OFFSET_END
        consumer.assign([TopicPartition(args.topic, p, start) for p in sorted(info.partitions)])
        return _print_records(consumer, decoder, args.max, args.idle)
    finally:
        consumer.close()


def _print_records(consumer: Consumer, decoder: ValueDecoder, limit: int | None, idle: float | None) -> int:
    printed = 0
    last_new = time.monotonic()
    while limit is None or printed < limit:
        if idle is not None and time.monotonic() - last_new >= idle:
            break
        for msg in consumer.consume(num_messages=100, timeout=0.5):
            error = msg.error()
            if error is not None:
                if error.code() != KafkaError._PARTITION_EOF:
                    print(f"warning: {error}", file=sys.stderr)
                continue
            print(format_record(msg, decoder.decode(msg.value())), flush=True)
            printed += 1
            last_new = time.monotonic()
            if limit is not None and printed >= limit:
                break
    return 0


def format_record(msg: Message, decoded: Decoded) -> str:
    """Two or three lines: position and key, headers (if any), value."""
    key = msg.key()
    ts_type, ts = msg.timestamp()
    when = datetime.fromtimestamp(ts / 1000, UTC).isoformat(timespec="milliseconds") if ts_type else "-"
    lines = [f"{msg.topic()}  partition {msg.partition()}  offset {msg.offset()}  key {_show(key)}  {when}"]
    raw_headers = msg.headers() or []
    headers = raw_headers.items() if isinstance(raw_headers, dict) else raw_headers
    if headers:
        lines.append("  headers  " + "  ".join(f"{name}={_show(value)}" for name, value in headers))
    shown = json.dumps(decoded.value, ensure_ascii=False, default=_json_default)
    lines.append(f"  {decoded.label}  {shown}" if decoded.value is not None else f"  {decoded.label}")
    return "\n".join(lines)


def _show(raw: bytes | str | None) -> str:
    if raw is None:
        return "null"
    if isinstance(raw, str):
        return raw
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "0x" + raw.hex()
    return text if text.isprintable() and " " not in text else json.dumps(text)


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return "0x" + value.hex()
    return str(value)  # datetime, Decimal, UUID


def _store(folder: Path) -> SchemaStore:
    if not folder.is_dir():
        return SchemaStore([])
    store, problems = SchemaStore.from_dir(folder)
    for problem in problems:
        print(f"warning: {problem}", file=sys.stderr)
    return store


def _registry(url: str | None) -> Any:
    if url is None:
        return None
    from mqtt_kafka_sync.codec import registry  # noqa: PLC0415 - the registry client is a heavy import
    from mqtt_kafka_sync.codec.registry_settings import RegistrySettings  # noqa: PLC0415

    user_info = os.environ.get(USER_INFO_ENV)
    settings = RegistrySettings(url=url, user_info=Secret(user_info) if user_info else None)

    def by_id(schema_id: int) -> AvroSchema:
        text = registry.schema_by_id(settings, schema_id)
        try:
            return parse_schema_text(text, f"registry id {schema_id}")
        except SyncError as exc:
            raise SyncError(f"registry schema {schema_id} does not parse: {exc}") from None

    return by_id
