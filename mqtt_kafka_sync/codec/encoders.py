"""Each route's encoder, by value format: the shared ``bytes`` and ``json`` ones, or an Avro encoder
built with the route's schema (:mod:`mqtt_kafka_sync.codec.avro`, imported only when used)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from mqtt_kafka_sync.codec.values import ENCODERS, Encoder, ValueFormat

if TYPE_CHECKING:
    from mqtt_kafka_sync.codec.avro import AvroSettings


def make_encoder(route: str, value_format: ValueFormat, avro: AvroSettings | None = None) -> Encoder:
    """The encoder of route ``route``; for ``avro`` (with its settings) this parses the schema and,
    with a registry, fetches or registers it (raises :class:`~mqtt_kafka_sync.errors.SchemaRegistryError`)."""
    if value_format != "avro":
        return ENCODERS[value_format]
    from mqtt_kafka_sync.codec.avro import avro_encoder  # noqa: PLC0415 - fastavro only when used

    if avro is None:
        raise ValueError(f"route {route!r} has value.format=avro but no Avro settings")
    return avro_encoder(route, avro)
