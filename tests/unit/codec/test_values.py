"""Value formats: ``bytes`` passes through, ``json`` must parse and is re-encoded compactly.

(``avro`` has its own tests: test_avro_*.py.)"""

from __future__ import annotations

from typing import get_args

import pytest

from mqtt_kafka_sync.codec.encoders import make_encoder
from mqtt_kafka_sync.codec.values import ENCODERS, ValueFormat
from mqtt_kafka_sync.codec.values import encode_value as encode_with
from mqtt_kafka_sync.errors import DecodeError


def encode_value(value_format: ValueFormat, payload: bytes, mqtt_topic: str) -> bytes:
    return encode_with(make_encoder("r", value_format), (), payload, mqtt_topic)


@pytest.mark.parametrize(
    ("value_format", "payload", "expected"),
    [
        ("bytes", b"\x00\xff not json", b"\x00\xff not json"),
        ("bytes", b"", b""),
        ("json", b'{ "a" : 1,\n "b": [true, null] }', b'{"a":1,"b":[true,null]}'),
        ("json", '{"t": "\u00fcber \u20ac"}'.encode(), '{"t":"\u00fcber \u20ac"}'.encode()),
        ("json", b'"\\u00fc"', '"\u00fc"'.encode()),  # escapes become UTF-8
        ("json", b"12345678901234567890123", b"12345678901234567890123"),  # integers stay exact
        ("json", b"1.50", b"1.5"),
        ("json", b"1E3", b"1000.0"),
        ("json", b'"\\ud800"', b'"\\ud800"'),  # a lone surrogate stays escaped
        ("json", b" 7 ", b"7"),
    ],
)
def test_encodes(value_format: ValueFormat, payload: bytes, expected: bytes) -> None:
    assert encode_value(value_format, payload, "t") == expected


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "not valid JSON: Expecting value at line 1 column 1"),
        (b"{", "not valid JSON: Expecting property name enclosed in double quotes at line 1 column 2"),
        (b'{"a": 1}\n{"b": 2}', "not valid JSON: Extra data at line 2 column 1"),
        (b"NaN", "not valid JSON: NaN is not a JSON value"),
        (b"[Infinity]", "not valid JSON: Infinity is not a JSON value"),
        (b"1e999", "not valid JSON: number 1e999 is out of range"),
        (b'"\xff"', "not valid UTF-8: invalid start byte at byte 1"),
        (b"[" * 100_000 + b"]" * 100_000, "not valid JSON: nested too deeply"),
        (b"9" * 5000, "not valid JSON: Exceeds the limit"),
    ],
)
def test_json_rejects(payload: bytes, reason: str) -> None:
    with pytest.raises(DecodeError) as caught:
        encode_value("json", payload, "plants/p1/x")
    assert caught.value.detail.startswith(reason)
    assert caught.value.mqtt_topic == "plants/p1/x"
    assert caught.value.reason == "bad-payload"


def test_every_value_format_has_an_encoder() -> None:
    # An avro route's encoder is built with its schema (codec.avro), so it is not shared.
    assert set(ENCODERS) | {"avro"} == set(get_args(ValueFormat))


def test_an_avro_encoder_needs_its_routes_avro_settings() -> None:
    with pytest.raises(ValueError, match=r"value\.format=avro but no Avro settings"):
        make_encoder("r", "avro")


def test_json_fast_path_keeps_integers_beyond_64_bits_and_large_floats() -> None:
    payload = b'{"big": 123456789012345678901234567890, "small": 18446744073709551615, "f": 2.5e30}'
    assert encode_value("json", payload, "t") == (
        b'{"big":123456789012345678901234567890,"small":18446744073709551615,"f":2.5e+30}'
    )
    assert (
        encode_value("json", b'{"a": [1, {"b": 1.50}], "c": "\\u00e9"}', "t")
        == '{"a":[1,{"b":1.5}],"c":"é"}'.encode()
    )


@pytest.mark.parametrize(
    "literal",
    [
        "-9223372036854775809",  # one below -2**63: orjson rounds it to -2**63.0
        "-9223372036854775808",
        "-9223372036854775807",
        "-9223372036854775810",
        "-18446744073709551616",
        "-123456789012345678901234567890",
        "9223372036854775807",
        "9223372036854775808",
        "18446744073709551615",
        "18446744073709551616",
        "0",
        "-1",
    ],
)
def test_json_integers_around_every_64_bit_edge_stay_exact(literal: str) -> None:
    for payload in (literal, f'{{"v": {literal}}}', f"[1, [{literal}]]"):
        out = encode_value("json", payload.encode(), "t")
        assert literal in out.decode()
        assert "e+" not in out.decode() and "." not in out.decode()
