"""Every route shape: placeholders, ``+``, ``#`` and ``{#}``, order, misses, illegal topics, keys."""

from __future__ import annotations

import pytest

from mqtt_kafka_sync.config.model import RouteConfig
from mqtt_kafka_sync.errors import RoutingError
from mqtt_kafka_sync.routing.pattern import PatternError, compile_pattern, covers, merge_filters, overlaps
from mqtt_kafka_sync.routing.router import ENTRY_OVERHEAD_BYTES, RouteMatch, Router
from mqtt_kafka_sync.routing.template import TemplateError, compile_template


def _route(pattern: str, topic: str, key: str | None = None, name: str = "r") -> RouteConfig:
    return RouteConfig(name, pattern, topic, key, "bytes")


# (pattern, Kafka topic template, key template or None) -> MQTT topic -> (Kafka topic, key) or None
RENDERING = [
    (
        ("plants/{plant}/devices/{device}/telemetry", "telemetry", "{plant}.{device}"),
        "plants/p1/devices/d7/telemetry",
        ("telemetry", b"p1.d7"),
    ),
    (("sites/{site}/#", "site-{site}", "{#}"), "sites/berlin/a/b/c", ("site-berlin", b"a/b/c")),
    # '#' matches the parent level too
    (("sites/{site}/#", "site-{site}", "{#}"), "sites/berlin", ("site-berlin", b"")),
    (("#", "all", "{#}"), "x/y", ("all", b"x/y")),
    (("a/+/b", "ab", None), "a/anything/b", ("ab", b"a/anything/b")),  # key defaults to the MQTT topic
    (("a/{x}/b", "ab-{x}", "{topic}"), "a/1/b", ("ab-1", b"a/1/b")),
    (("a/{x}", "t-{x}", "{{{x}}}"), "a/q", ("t-q", b"{q}")),  # {{ and }} are literal braces
    (("t/{id}", "t", "{id}"), "t/\u00fcber", ("t", "\u00fcber".encode())),  # keys are UTF-8
    (("a/{empty}/b", "ab", "[{empty}]"), "a//b", ("ab", b"[]")),  # placeholders match empty levels
    (("a.b/{x}", "a.b", "{x}"), "a.b/1", ("a.b", b"1")),
    (("a.b/{x}", "a.b", "{x}"), "aXb/1", None),  # '.' in a pattern is literal
]


@pytest.mark.parametrize(("route", "mqtt_topic", "expected"), RENDERING)
def test_route_renders_topic_and_key(
    route: tuple[str, str, str | None], mqtt_topic: str, expected: tuple[str, bytes] | None
) -> None:
    router = Router([_route(*route)])
    if expected is None:
        with pytest.raises(RoutingError):
            router.route(mqtt_topic)
    else:
        assert router.route(mqtt_topic) == RouteMatch("r", *expected)


@pytest.mark.parametrize(
    ("mqtt_topic", "route_name"),
    [
        ("plants/p1/devices/d1/status", "status"),
        ("plants/p1/devices/d1/telemetry", "telemetry"),
        ("plants/p1/other", "rest"),
    ],
)
def test_first_matching_route_wins(mqtt_topic: str, route_name: str) -> None:
    router = Router(
        [
            _route("plants/+/devices/+/status", "status", name="status"),
            _route("plants/{p}/devices/{d}/#", "telemetry", name="telemetry"),
            _route("plants/#", "rest", name="rest"),  # matches all of the above too
        ]
    )
    assert router.route(mqtt_topic).route_name == route_name


@pytest.mark.parametrize(
    ("routes", "mqtt_topic", "message"),
    [
        ([_route("a/{x}", "t", name="one")], "b/1", r"no route matches \(tried one\)"),
        ([_route("a/{x}", "t")], "a/1/2", "no route matches"),  # one level is not two
        ([_route("a/b", "t")], "a/b/", "no route matches"),
        ([_route("+/x", "t")], "$SYS/x", "no route matches"),  # wildcards never match $ topics
        ([], "a", r"tried none configured"),
        ([_route("a/{x}", "t-{x}", name="bad")], "a/x y", r"route 'bad' renders 't-x y' is not a legal"),
        ([_route("a/#", "{#}", name="deep")], "a/b/c", r"'b/c' is not a legal Kafka topic"),
        ([_route("a/#", "{#}")], "a", r"'' is not a legal Kafka topic"),
        ([_route("a/{x}", "{x}")], "a/..", r"'\.\.' is not a legal"),
        ([_route("a/{x}", "{x}")], "a/" + "x" * 250, "not a legal Kafka topic"),
    ],
)
def test_unroutable_topics_raise(routes: list[RouteConfig], mqtt_topic: str, message: str) -> None:
    with pytest.raises(RoutingError, match=message) as caught:
        Router(routes).route(mqtt_topic)
    assert caught.value.mqtt_topic == mqtt_topic
    assert caught.value.reason == "no-route"


def test_cache_returns_equal_results_and_misses_raise_every_time() -> None:
    entry = ENTRY_OVERHEAD_BYTES + len("plants/a/devices/1/x") + len("t-a") + len("1")
    router = Router([_route("plants/{p}/devices/{d}/#", "t-{p}", "{d}")], cache_bytes=2 * entry)
    first = router.route("plants/a/devices/1/x")
    assert router.route("plants/a/devices/1/x") is first
    router.route("plants/b/devices/2/x")
    router.route("plants/c/devices/3/x")  # evicts the first entry
    assert len(router.cache) == 2
    assert router.route("plants/a/devices/1/x") == first
    assert router.route("plants/a/devices/1/x") is not first  # worked out again
    for _ in range(2):
        with pytest.raises(RoutingError):
            router.route("elsewhere")
    assert router.cache.bytes <= router.cache.max_bytes


def test_cache_is_bounded_by_bytes_whatever_the_topic_length() -> None:
    """6,000 distinct 60 KB topics, their key the whole topic: the cache holds at most its bytes."""
    router = Router([_route("{site}/#", "t", "{topic}")], cache_bytes=1 << 20)
    for i in range(6_000):
        match = router.route(f"s{i}/" + "x" * 60_000)
        assert len(match.key) > 60_000
        assert router.cache.bytes <= 1 << 20
    assert 1 <= len(router.cache) <= (1 << 20) // 120_000
    # A topic larger than the whole cache is routed, not cached.
    tiny = Router([_route("{site}/#", "t", "{topic}")], cache_bytes=65_536)
    assert tiny.route("s/" + "y" * 70_000).kafka_topic == "t"
    assert len(tiny.cache) == 0


def test_filters_are_deduplicated_in_route_order_without_covered_ones() -> None:
    router = Router(
        [
            _route("b/{x}", "t"),
            _route("a/{x}/c", "t"),
            _route("b/+", "t"),
            _route("a/#", "t"),
            _route("z", "t"),
        ]
    )
    assert router.filters == ("b/+", "a/#", "z")


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("", "empty"),
        ("a/#/b", "'#' must be the last level"),
        ("a/b#", "whole level"),
        ("a/+b", "whole level"),
        ("a/dev-{id}", "placeholder must be a whole level"),
        ("a/{1x}", "must match"),
        ("a/{}", "must match"),
        ("a/{x}/{x}", "appears twice"),
        ("a/{topic}", "built in"),
        ("$share/g/a", r"\$share"),
        ("a/\0", "NUL"),
    ],
)
def test_bad_patterns(pattern: str, message: str) -> None:
    with pytest.raises(PatternError, match=message):
        compile_pattern(pattern)


@pytest.mark.parametrize(
    ("pattern", "mqtt_filter", "names"),
    [
        ("plants/{plant}/devices/{device}/telemetry", "plants/+/devices/+/telemetry", ("plant", "device")),
        ("sites/{site}/#", "sites/+/#", ("site",)),
        ("a/+/b", "a/+/b", ()),
        ("#", "#", ()),
    ],
)
def test_pattern_filter(pattern: str, mqtt_filter: str, names: tuple[str, ...]) -> None:
    compiled = compile_pattern(pattern)
    assert (compiled.filter, compiled.names) == (mqtt_filter, names)


@pytest.mark.parametrize(
    ("template", "pattern", "message"),
    [
        ("site-{region}", "sites/{site}/#", r"\{region\} is not defined by the pattern"),
        ("{#}", "a/{x}", "needs a pattern ending in '#'"),
        ("{x", "a/{x}", "literal brace"),
        ("x}", "a/{x}", "literal brace"),
        ("{}", "a/{x}", "not a placeholder"),
        ("{x!r}", "a/{x}", "not a placeholder"),
        ("{x:>4}", "a/{x}", "not a placeholder"),
        ("{x.real}", "a/{x}", "not a placeholder"),
    ],
)
def test_bad_templates(template: str, pattern: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        compile_template(template, compile_pattern(pattern))


@pytest.mark.parametrize(
    ("outer", "inner", "covered", "overlapping"),
    [
        ("a/#", "a/b/c", True, True),
        ("a/#", "a", True, True),
        ("a/+", "a/b", True, True),
        ("a/b", "a/+", False, True),
        ("a/+/c", "a/b/+", False, True),
        ("a/+", "a/b/c", False, False),
        ("a/b", "a/c", False, False),
        ("#", "x/y/#", True, True),
        ("a/+/#", "a/#", False, True),
        ("a", "a/#", False, True),
    ],
)
def test_filter_relations(outer: str, inner: str, covered: bool, overlapping: bool) -> None:
    assert covers(outer, inner) is covered
    assert overlaps(outer, inner) is overlapping
    assert overlaps(inner, outer) is overlapping


def test_merge_filters_keeps_order() -> None:
    assert merge_filters(["x/+", "a/b", "x/+", "a/#"]) == ("x/+", "a/#")
