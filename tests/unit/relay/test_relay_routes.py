"""Relay routing: key templates read backwards, topic templates that cannot change shape, and every
reason a record is dead-lettered instead of published."""

from __future__ import annotations

from dataclasses import replace

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, TIMESTAMP_NOT_AVAILABLE, Message

from mqtt_kafka_sync.config.model import RelayRouteConfig
from mqtt_kafka_sync.errors import CommandError
from mqtt_kafka_sync.kafka.producer import Headers
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.routing.command_topic import CommandTopicError, compile_command_topic, unsafe_value
from mqtt_kafka_sync.routing.key_template import KeyTemplateError, compile_key_template

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("template", "key", "expected"),
    [
        ("{plant}.{device}", "p01.d0001", {"plant": "p01", "device": "d0001"}),
        ("{plant}.{device}", "a.b.c", {"plant": "a", "device": "b.c"}),  # shortest first, from the left
        ("{plant}.{device}", "p01.", {"plant": "p01", "device": ""}),  # empty: the topic check refuses it
        ("{plant}.{device}", "p01", None),
        ("{plant}.{device}", "", None),
        ("site-{site}/{device}", "site-7/m1", {"site": "7", "device": "m1"}),
        ("site-{site}/{device}", "plant-7/m1", None),
        ("{key}", "anything at all", {"key": "anything at all"}),
        ("fixed", "fixed", {}),
        ("fixed", "fixed2", None),
        ("{{{id}}}", "{42}", {"id": "42"}),  # literal braces
        ("{a}.{b}", "x\ny.z", {"a": "x\ny", "b": "z"}),  # any character, newlines too
    ],
)
def test_key_template_parses_keys(template: str, key: str, expected: dict[str, str] | None) -> None:
    assert compile_key_template(template).parse(key) == expected


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("", "empty"),
        ("{a}{b}", "need literal text between them"),
        ("{a}.{a}", "appears twice"),
        ("{header}", "reserved"),
        ("{a.b}", "not a placeholder"),
        ("{a!r}", "not a placeholder"),
        ("{a", "literal brace"),
    ],
)
def test_bad_key_templates(template: str, problem: str) -> None:
    with pytest.raises(KeyTemplateError, match=problem):
        compile_key_template(template)


@pytest.mark.parametrize(
    ("template", "problem"),
    [
        ("plants/+/commands", "wildcard"),
        ("plants/{plant}/#", "wildcard"),
        ("$SYS/{plant}", "belong to the broker"),
        ("plants/{site}/commands", "not a placeholder of the route's kafka.key"),
        ("plants/{header.x y}/c", "header name"),
        ("plants/{plant:>5}", "not a placeholder"),
        ("", "empty"),
    ],
)
def test_bad_topic_templates(template: str, problem: str) -> None:
    with pytest.raises(CommandTopicError, match=problem):
        compile_command_topic(template, ["plant"])


def test_topic_template_parts() -> None:
    topic = compile_command_topic("p/{plant}/dev-{header.device}/c", ["plant"])
    assert topic.names == {"plant"} and topic.headers == {"device"}
    assert topic.render({"plant": "a", "header.device": "7"}) == "p/a/dev-7/c"


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("d0001", None),
        ("déjà-vu 1.5", None),
        ("", "is empty"),
        ("a/b", "'/'"),
        ("+", "'+'"),
        ("x#", "'#'"),
        ("a\0b", "U+0000"),
        ("a\nb", "U+000A"),
        ("a\x7fb", "U+007F"),
        ("a\x85b", "U+0085"),
        ("a\ufffeb", "U+FFFE"),
    ],
)
def test_unsafe_values(value: str, why: str | None) -> None:
    found = unsafe_value(value)
    assert found is None if why is None else (found is not None and why in found)


ROUTE = RelayRouteConfig(
    name="cmd",
    kafka_topic="commands",
    kafka_key="{plant}.{device}",
    mqtt_topic="plants/{plant}/devices/{device}/commands",
    response_topic="plants/{plant}/devices/{device}/commands/response",
)


def _record(
    key: bytes | None = b"p01.d0001",
    *,
    topic: str = "commands",
    value: bytes | None = b'{"rate": 5}',
    headers: Headers | None = None,
    ts: tuple[int, int] = (TIMESTAMP_CREATE_TIME, int(NOW * 1000)),
) -> Message:
    return Message(
        topic=topic, partition=3, offset=42, key=key, value=value, headers=headers or None, timestamp=ts
    )


def _reason(router: CommandRouter, record: Message) -> str:
    with pytest.raises(CommandError) as caught:
        router.command(record, NOW)
    return caught.value.reason


def test_a_command_carries_topic_headers_correlation_and_response_topic() -> None:
    router = CommandRouter([ROUTE])
    command = router.command(_record(headers=[("trace", b"abc"), ("empty", None)]), NOW)
    assert command.topic == "plants/p01/devices/d0001/commands"
    assert command.payload == b'{"rate": 5}' and command.qos == 1 and not command.retain
    assert command.user_properties == (("trace", "abc"), ("empty", ""))
    assert command.correlation_data == b"commands/3/42"
    assert command.response_topic == "plants/p01/devices/d0001/commands/response"
    assert command.expiry_seconds is None


def test_correlation_data_from_a_header_when_configured() -> None:
    router = CommandRouter([replace(ROUTE, correlation_header="correlation-id")])
    with_header = _record(headers=[("correlation-id", b"req-7")])
    assert router.command(with_header, NOW).correlation_data == b"req-7"
    assert router.command(_record(), NOW).correlation_data == b"commands/3/42"  # fallback


def test_a_null_value_is_an_empty_payload() -> None:
    assert CommandRouter([ROUTE]).command(_record(value=None), NOW).payload == b""


@pytest.mark.parametrize(
    ("key", "reason"),
    [
        (None, "bad-key"),
        (b"\xff.d1", "bad-key"),
        (b"no-dot", "bad-key"),
        (b"", "bad-key"),
        (b"p01.#", "unsafe-placeholder"),
        (b"p01.+", "unsafe-placeholder"),
        (b"p01.a/b", "unsafe-placeholder"),
        (b"p01.", "unsafe-placeholder"),
        (b".d0001", "unsafe-placeholder"),
        (b"p01.d1\x00", "unsafe-placeholder"),
        (b"$SYS.d1", "unsafe-placeholder"),  # only when the value starts the topic, see below
    ],
)
def test_keys_that_never_publish(key: bytes | None, reason: str) -> None:
    route = replace(ROUTE, mqtt_topic="{plant}/{device}/commands", response_topic=None)
    assert _reason(CommandRouter([route]), _record(key)) == reason


def test_a_dollar_inside_the_topic_is_fine() -> None:
    command = CommandRouter([ROUTE]).command(_record(b"$p.d1"), NOW)
    assert command.topic == "plants/$p/devices/d1/commands"


def test_unused_placeholders_are_not_checked() -> None:
    route = replace(ROUTE, mqtt_topic="devices/{device}/commands", response_topic=None)
    assert CommandRouter([route]).command(_record(b"a/b.d1"), NOW).topic == "devices/d1/commands"


def test_header_placeholders() -> None:
    route = replace(ROUTE, kafka_key="{plant}", mqtt_topic="p/{plant}/{header.device}/c", response_topic=None)
    router = CommandRouter([route])
    ok = router.command(_record(b"p1", headers=[("device", b"old"), ("device", b"d9")]), NOW)
    assert ok.topic == "p/p1/d9/c"  # the last header of that name
    assert _reason(router, _record(b"p1")) == "missing-header"
    assert _reason(router, _record(b"p1", headers=[("device", b"#")])) == "unsafe-placeholder"
    assert _reason(router, _record(b"p1", headers=[("device", None)])) == "unsafe-placeholder"
    assert _reason(router, _record(b"p1", headers=[("device", b"\xff")])) == "bad-header"


def test_headers_that_cannot_be_user_properties() -> None:
    router = CommandRouter([ROUTE])
    assert _reason(router, _record(headers=[("bin", b"\x00\xff")])) == "bad-header"
    assert _reason(router, _record(headers=[("nul", b"a\x00b")])) == "bad-header"


def test_routes_by_topic_first_match_wins_and_patterns() -> None:
    first = replace(ROUTE, name="exact", kafka_topic="commands-eu")
    pattern = replace(
        ROUTE, name="any", kafka_topic="^commands-.*", mqtt_topic="all/{device}", response_topic=None
    )
    router = CommandRouter([first, pattern])
    assert router.command(_record(topic="commands-eu"), NOW).route == "exact"
    assert router.command(_record(topic="commands-us"), NOW).route == "any"
    assert _reason(router, _record(topic="other")) == "no-route"
    assert _reason(router, _record(topic="xcommands-us")) == "no-route"
    prefix = CommandRouter([replace(ROUTE, kafka_topic="^commands-")])  # librdkafka: not anchored at the end
    assert prefix.command(_record(topic="commands-us-east"), NOW).route == "cmd"
    whole = CommandRouter([replace(ROUTE, kafka_topic="^commands-[a-z]+$")])
    assert _reason(whole, _record(topic="commands-us-east")) == "no-route"


@pytest.mark.parametrize(
    ("age", "expiry"),
    [(0.0, 60), (10.0, 50), (59.2, 1), (-30.0, 60)],  # a timestamp from the future counts as new
)
def test_message_expiry_counts_from_the_kafka_timestamp(age: float, expiry: int) -> None:
    router = CommandRouter([replace(ROUTE, message_expiry_seconds=60)])
    record = _record(ts=(TIMESTAMP_CREATE_TIME, int((NOW - age) * 1000)))
    assert router.command(record, NOW).expiry_seconds == expiry


def test_expired_records_are_dead_lettered() -> None:
    router = CommandRouter([replace(ROUTE, message_expiry_seconds=60)])
    old = _record(ts=(TIMESTAMP_CREATE_TIME, int((NOW - 61) * 1000)))
    with pytest.raises(CommandError) as caught:
        router.command(old, NOW)
    assert caught.value.reason == "expired"
    assert caught.value.mqtt_topic == "plants/p01/devices/d0001/commands"
    no_time = _record(ts=(TIMESTAMP_NOT_AVAILABLE, 0))
    assert router.command(no_time, NOW).expiry_seconds == 60
