"""Which groups the supervisor's one lag reader reads, how often, and for whom."""

from __future__ import annotations

import pickle

from mqtt_kafka_sync.kafka.lag_hub import LagHub
from mqtt_kafka_sync.runtime.lag import fed_lag, lag_watches, throttle_feeds
from tests.unit.telemetry.telemetry_fakes import relay_config, source_config


def test_one_watch_per_group_at_the_shortest_interval_anyone_needs() -> None:
    source, relay = source_config(throttled=True), relay_config()
    assert source.throttle is not None
    throttle_every = source.throttle.interval_seconds
    watches = {w.group: w for w in lag_watches([source, relay], metrics_interval=throttle_every * 10)}
    assert set(watches) == {"downstream", "commands-relay"}
    down, relayed = watches["downstream"], watches["commands-relay"]
    assert (down.interval, down.time_lag_interval) == (throttle_every, throttle_every * 10)
    assert (relayed.interval, relayed.time_lag_interval) == (throttle_every * 10, throttle_every * 10)
    assert down.topics("telemetry") and not down.topics("commands")
    assert relayed.topics("commands") and not relayed.topics("telemetry")
    assert pickle.loads(pickle.dumps(down.topics))("telemetry")  # noqa: S301  # the reader process gets it
    fast = {w.group: w for w in lag_watches([source], metrics_interval=throttle_every / 2)}
    assert fast["downstream"].interval == throttle_every / 2


def test_without_metrics_only_throttles_groups_are_read_and_never_with_the_time_lag() -> None:
    (watch,) = lag_watches([source_config(throttled=True), relay_config()], metrics_interval=None)
    assert (watch.group, watch.time_lag_interval) == ("downstream", None)
    assert lag_watches([source_config(), relay_config()], metrics_interval=None) == []


def test_each_throttled_connector_gets_one_feed_its_tasks_read() -> None:
    source = source_config(throttled=True)
    hub = LagHub(lag_watches([source, relay_config()], None), lambda: None)
    feeds = throttle_feeds([source, source_config(), relay_config()], hub)
    assert list(feeds) == [source.name]
    feeds[source.name].put(7)
    assert fed_lag(source, feeds[source.name]).read_lag() == 7
