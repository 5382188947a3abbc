"""docs/config-reference.md is generated from the spec and must not drift from it."""

from __future__ import annotations

from pathlib import Path

from mqtt_kafka_sync.config import spec
from mqtt_kafka_sync.config.reference import COMMAND, render_reference

DOC = Path(__file__).resolve().parents[3] / "docs" / "config-reference.md"


def test_reference_is_up_to_date() -> None:
    assert DOC.read_text(encoding="utf-8") == render_reference(), f"docs are stale: run `{COMMAND}`"


def test_reference_documents_every_key() -> None:
    text = render_reference()
    keys = [k.key for k in spec.SOURCE_KEYS] + [k.key for k in spec.ROUTE_KEYS.values()]
    keys.append(spec.ROUTE_FIELD_KEY.key)
    missing = [k for k in keys if f"### `{k}`" not in text]
    assert not missing
    assert all(k.description and k.example for k in spec.SOURCE_KEYS)


def test_every_example_and_default_is_valid() -> None:
    for key in [*spec.SOURCE_KEYS, *spec.ROUTE_KEYS.values(), spec.ROUTE_FIELD_KEY]:
        key.parse(key.example)
        if key.default is not None:
            key.parse(key.default)
