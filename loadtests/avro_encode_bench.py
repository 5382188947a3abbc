"""Encode cost per record of the ``avro`` value format, per schema in ``schemas/``, beside ``json``.

    python -m loadtests.avro_encode_bench            # 100,000 records per row
    python -m loadtests.avro_encode_bench --records 20000

Each row runs the route's real encoder, built once as a task builds it (schema parsed, JSON converter
compiled, header fixed), on one representative payload, through ``encode_value`` exactly as the
pipeline calls it: parse the JSON, fill ``device`` from the topic, check and convert, fastavro's
``schemaless_writer`` into the reused buffer. The registry wire format differs from single-object
encoding only in its 5-byte header, so its cost is the same. ``json`` is the ``json`` value format
(parse and re-encode) on the same payload. Single thread, no Kafka; best of 3 runs.
"""

from __future__ import annotations

import argparse
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import orjson
from fastavro import schemaless_writer

from mqtt_kafka_sync.codec.avro import AvroEncoder
from mqtt_kafka_sync.codec.json_avro import compile_converter
from mqtt_kafka_sync.codec.schema import load_schema_file
from mqtt_kafka_sync.config.model import AvroValueConfig, RouteConfig, ValueFormat
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from mqtt_kafka_sync.routing.router import RouteMatch

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
PATTERN = "plants/{plant}/devices/{device}/x"
TOPIC = "plants/p01/devices/d0001/x"
PAYLOADS: dict[str, dict[str, object]] = {  # what a device publishes; the route fills "device" from the topic
    "telemetry.v1.avsc": {"seq": 123456, "ts": 1718000000.123456, "value": 20.513},
    "telemetry.v2.avsc": {
        "seq": 123456,
        "ts": 1718000000.123456,
        "value": 20.513,
        "unit": "Cel",
        "quality": "good",
    },
    "status.v1.avsc": {"state": "offline", "reason": "last-will"},
    "command.v1.avsc": {
        "command_id": "6f1c2a4e-3b5d-4c7e-9f80-112233445566",
        "name": "set-interval",
        "params": {"seconds": 30, "burst": True},
        "ts": 1718000000.0,
    },
    "command-ack.v1.avsc": {
        "command_id": "6f1c2a4e-3b5d-4c7e-9f80-112233445566",
        "status": "done",
        "ts": 1718000002.0,
    },
}


def _match(value_format: ValueFormat, schema_file: str | None = None) -> tuple[IngestRoutes, RouteMatch]:
    value = None
    if schema_file is not None:
        schema = load_schema_file(SCHEMAS / schema_file)
        value = AvroValueConfig(schema=schema, subject=None, fields=(("device", "{plant}.{device}"),))
    route = RouteConfig("r", PATTERN, "t", "{plant}.{device}", value_format, value)
    routes = IngestRoutes([route])
    return routes, routes.route(TOPIC)


def encode_value(routed: tuple[IngestRoutes, RouteMatch], payload: bytes, topic: str) -> bytes:
    routes, match = routed
    return routes.encode(match, payload, topic)


def _best_us(call: Callable[[], object], records: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(records):
            call()
        best = min(best, time.perf_counter() - start)
    return best / records * 1e6


HEADER = (
    f"{'schema':22} {'payload B':>9} {'avro B':>7} {'json us':>8} {'avro us':>8} {'avro/s':>9}"
    "   avro split: parse + check + write"
)


def row(schema_file: str, sample: dict[str, object], records: int) -> str:
    payload = json.dumps({"device": "p01.d0001", **sample}).encode()
    avro_match, json_match = _match("avro", schema_file), _match("json")
    encoder = avro_match[0].encoders["r"]
    assert isinstance(encoder, AvroEncoder)
    encoded = encode_value(avro_match, payload, TOPIC)
    json_us = _best_us(lambda: encode_value(json_match, payload, TOPIC), records)
    avro_us = _best_us(lambda: encode_value(avro_match, payload, TOPIC), records)
    parsed = encoder.schema.parsed
    convert = compile_converter(parsed)
    datum = convert(orjson.loads(payload))
    buffer = io.BytesIO()

    def write() -> None:
        buffer.seek(0)
        buffer.truncate()
        schemaless_writer(buffer, parsed, datum)

    parse_us = _best_us(lambda: orjson.loads(payload), records)
    check_us = _best_us(lambda: convert(orjson.loads(payload)), records) - parse_us
    write_us = _best_us(write, records)
    return (
        f"{schema_file:22} {len(payload):9d} {len(encoded):7d} {json_us:8.2f} {avro_us:8.2f} "
        f"{1e6 / avro_us:9,.0f}   {parse_us:.2f} + {check_us:.2f} + {write_us:.2f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000, help="records per run (default %(default)s)")
    args = parser.parse_args()
    print(HEADER)
    for schema_file, sample in PAYLOADS.items():
        print(row(schema_file, sample, args.records))


if __name__ == "__main__":
    main()
