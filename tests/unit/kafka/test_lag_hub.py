"""The supervisor's lag hub without a broker: what each throttle's feed and the metrics get from one
reading of a group, and when a throttle counts its feed as unreadable."""

from __future__ import annotations

import pytest

from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.lag import GroupLag, LagSample
from mqtt_kafka_sync.kafka.lag_feed import FIRST_READING_GRACE_S, FedLagReader, LagFeed
from mqtt_kafka_sync.kafka.lag_hub import LagHub, LagWatch, Reading
from mqtt_kafka_sync.kafka.lag_topics import AnyTopic, SubscribedTopics, TopicTemplates

BOOT = "127.0.0.1:1"


def _group(group: str, *lags: tuple[str, int | None]) -> GroupLag:
    return GroupLag(
        group,
        tuple(
            LagSample(group, topic, p, 100, None if lag is None else 100 - lag, lag, None)
            for p, (topic, lag) in enumerate(lags)
        ),
    )


def _hub() -> LagHub:
    watches = [
        LagWatch(
            BOOT, "historian", AnyTopic([TopicTemplates(["site-{s}"]), SubscribedTopics(["cmd"])]), 1.0, 5.0
        ),
        LagWatch(BOOT, "alerting", TopicTemplates(["site-{s}"]), 1.0, 5.0),
    ]
    return LagHub(watches, lambda: None)


def test_a_feed_gets_the_largest_total_of_its_groups_on_its_own_topics() -> None:
    hub, feed = _hub(), LagFeed()
    hub.feed(feed, BOOT, ["historian", "alerting"], TopicTemplates(["site-{s}"]))
    hub.take(
        Reading((BOOT, "historian"), _group("historian", ("site-a", 30), ("site-b", 20), ("cmd", 500)), False)
    )
    assert feed.get() == (0, None, False)  # nothing until every group of the feed was read once
    hub.take(Reading((BOOT, "alerting"), _group("alerting", ("site-a", 40)), False))
    assert feed.get() == (1, 50, True)  # historian: 30 + 20 on site-*, its "cmd" lag is not the throttle's
    hub.take(Reading((BOOT, "alerting"), None, False))
    assert feed.get() == (2, None, False)  # one group unreadable: the throttle's lag is unreadable
    hub.take(Reading((BOOT, "alerting"), _group("alerting", ("site-a", None)), False))
    assert feed.get() == (3, 50, True)


def test_a_feed_of_groups_without_commits_has_no_lag() -> None:
    hub, feed = _hub(), LagFeed()
    hub.feed(feed, BOOT, ["alerting"], TopicTemplates(["site-{s}"]))
    hub.take(Reading((BOOT, "alerting"), _group("alerting", ("site-a", None)), False))
    assert feed.get() == (1, None, True)


def test_metrics_see_the_latest_reading_with_the_time_lag_until_a_read_fails() -> None:
    hub = _hub()
    timed = _group("historian", ("site-a", 30), ("cmd", None))
    hub.take(Reading((BOOT, "historian"), timed, True))
    hub.take(Reading((BOOT, "historian"), _group("historian", ("site-a", 99)), False))  # for throttles
    assert hub.samples() == [timed.partitions[0]]  # partitions without a lag have no series
    hub.take(Reading((BOOT, "historian"), None, False))
    assert hub.samples() == []


def test_a_feed_of_an_unwatched_group_is_refused() -> None:
    with pytest.raises(ValueError, match="not watched"):
        _hub().feed(LagFeed(), BOOT, ["nobody"], TopicTemplates(["t"]))


def test_a_fed_reader_fails_on_a_failed_or_stale_reading() -> None:
    now = [0.0]
    feed = LagFeed()
    reader = FedLagReader(feed, 2.0, clock=lambda: now[0])
    assert reader.read_lag() is None  # the reader process is starting: no lag, nothing to log
    now[0] = FIRST_READING_GRACE_S + 1
    with pytest.raises(LagReadError, match="has read no lag"):
        reader.read_lag()
    now[0] = 0.0
    feed.put(120)
    assert reader.read_lag() == 120
    now[0] = 2.0
    assert reader.read_lag() == 120  # the same reading, still within two intervals
    now[0] = 2.5
    with pytest.raises(LagReadError, match="no new lag reading"):
        reader.read_lag()
    feed.put(None)
    assert reader.read_lag() is None
    feed.put_unreadable()
    with pytest.raises(LagReadError, match="cannot read the lag"):
        reader.read_lag()
