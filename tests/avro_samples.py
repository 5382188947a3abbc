"""Sample JSON payloads for every schema in ``schemas/``, shared by the unit and end-to-end tests.

Each sample is what a device publishes; the device id comes from the MQTT topic
(``value.fields.device={plant}.{device}``), so samples leave it out.
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

SCHEMAS = Path(__file__).resolve().parents[1] / "schemas"
COMMAND_ID = "6f1c2a4e-3b5d-4c7e-9f80-112233445566"

SAMPLES: dict[str, list[dict[str, Any]]] = {
    "telemetry.v1.avsc": [
        {"seq": 1, "ts": 1718000000.123456, "value": 20.5},
        {"seq": 2, "ts": 1718000001.0, "value": -3.25},
    ],
    "telemetry.v2.avsc": [
        {"seq": 1, "ts": 1718000000.5, "value": 21.5, "unit": "Cel", "quality": "good"},
        {"seq": 2, "ts": 1718000001.5, "value": 0.0, "quality": "bad"},
        {"seq": 3, "ts": 1718000002.5, "value": 99.0},
    ],
    "status.v1.avsc": [
        {"state": "online", "ts": 1718000000.0, "reason": None},
        {"state": "offline", "reason": "last-will"},
    ],
    "command.v1.avsc": [
        {
            "command_id": COMMAND_ID,
            "name": "set-interval",
            "params": {"seconds": 30, "burst": True, "label": "fast", "ratio": 0.5, "none": None},
            "ts": 1718000000.0,
            "expires_at": 1718000060.0,
        },
        {"command_id": "00000000-0000-4000-8000-000000000000", "name": "reboot", "ts": 1718000001.0},
    ],
    "command-ack.v1.avsc": [
        {"command_id": COMMAND_ID, "status": "done", "ts": 1718000002.0, "detail": None},
        {"command_id": COMMAND_ID, "status": "rejected", "ts": 1718000003.0, "detail": "expired"},
    ],
}


def expected_record(schema_file: str, sample: dict[str, Any], device: str) -> dict[str, Any]:
    """What a reader with the writer's schema decodes: the sample, the device, and the defaults."""
    defaults: dict[str, dict[str, Any]] = {
        "telemetry.v2.avsc": {"unit": None, "quality": "good"},
        "status.v1.avsc": {"ts": None, "reason": None},
        "command.v1.avsc": {"params": {}, "expires_at": None},
        "command-ack.v1.avsc": {"detail": None},
    }
    return {**defaults.get(schema_file, {}), **sample, "device": device}


def as_json_types(value: Any) -> Any:
    """A decoded record with logical types as JSON has them: fastavro reads a ``uuid`` as UUID."""
    if isinstance(value, dict):
        return {k: as_json_types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [as_json_types(v) for v in value]
    return str(value) if isinstance(value, uuid.UUID) else value
