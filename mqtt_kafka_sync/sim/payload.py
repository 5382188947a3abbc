"""Simulated devices: their ids, MQTT topics, Kafka keys and the telemetry payload they send.

A device id is ``{plant}.{device}``, e.g. ``p01.d0001``; it is also the Kafka record key the bridge
must produce. Devices are numbered globally (``d0001``, ``d0002``, ...) and handed to plants
``p01..pNN`` in contiguous blocks, so ids are unique and sort in creation order.

The payload is one JSON object::

    {"device": "p01.d0001", "seq": 1, "ts": 1718000000.123456, "value": 20.5, "pad": "xxxx"}

``seq`` counts from 1 per device, ``ts`` is the epoch time at send (what end-to-end latency is
measured from) and ``pad`` fills the payload up to the requested size.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable

from mqtt_kafka_sync.errors import SyncError

TELEMETRY_TOPIC_TEMPLATE = "plants/{plant}/devices/{device}/telemetry"
DEVICES_PER_PLANT = 100
_PAD_FIELD_OVERHEAD = len(',"pad":""')


class PayloadError(SyncError, ValueError):
    """Bytes that are not a simulator telemetry payload."""


def device_ids(count: int, plants: int | None = None) -> list[str]:
    """``count`` device ids spread over ``plants`` plants (default: one plant per 100 devices)."""
    if count < 0:
        raise ValueError(f"device count must be >= 0, got {count}")
    plant_count = plants if plants is not None else max(1, math.ceil(count / DEVICES_PER_PLANT))
    if plant_count < 1:
        raise ValueError(f"plant count must be >= 1, got {plant_count}")
    per_plant = max(1, math.ceil(count / plant_count))
    return [f"p{i // per_plant + 1:02d}.d{i + 1:04d}" for i in range(count)]


def split_device_id(device_id: str) -> tuple[str, str]:
    """``"p01.d0001"`` -> ``("p01", "d0001")``."""
    plant, sep, device = device_id.partition(".")
    if not sep or not plant or not device:
        raise ValueError(f"device id must look like 'p01.d0001', got {device_id!r}")
    return plant, device


def device_topic(device_id: str, template: str = TELEMETRY_TOPIC_TEMPLATE) -> str:
    """The MQTT topic ``device_id`` publishes to, from a template over ``{plant}`` and ``{device}``."""
    plant, device = split_device_id(device_id)
    return template.format(plant=plant, device=device)


def make_payload(device_id: str, seq: int, size: int = 0, *, clock: Callable[[], float] = time.time) -> bytes:
    """The JSON payload for message ``seq`` of ``device_id``, exactly ``size`` bytes long.

    A ``size`` smaller than the unpadded object (about 80 bytes) gives the unpadded object. Gaps
    too small for a ``"pad"`` field are filled with JSON whitespace, so the size is still exact.
    """
    body: dict[str, object] = {
        "device": device_id,
        "seq": seq,
        "ts": clock(),
        "value": round(20.0 + 5.0 * math.sin(seq / 10.0), 3),
    }
    text = json.dumps(body, separators=(",", ":"))
    gap = size - len(text)
    if gap >= _PAD_FIELD_OVERHEAD:
        text = f'{text[:-1]},"pad":"{"x" * (gap - _PAD_FIELD_OVERHEAD)}"}}'
    elif gap > 0:
        text = f"{text[:-1]}{' ' * gap}}}"
    return text.encode()


def parse_payload(payload: bytes | bytearray) -> tuple[str, int, float]:
    """``(device_id, seq, ts)`` of a payload made by :func:`make_payload`; raises :class:`PayloadError`."""
    try:
        body = json.loads(payload)
    except (UnicodeDecodeError, ValueError) as exc:
        raise PayloadError(f"not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise PayloadError(f"not a JSON object: {type(body).__name__}")
    device, seq, ts = body.get("device"), body.get("seq"), body.get("ts")
    if not isinstance(device, str):
        raise PayloadError(f"'device' must be a string, got {device!r}")
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise PayloadError(f"'seq' must be an integer, got {seq!r}")
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        raise PayloadError(f"'ts' must be a number, got {ts!r}")
    return device, seq, float(ts)
