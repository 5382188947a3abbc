"""The ingest subscriber's subscriptions: the SUBSCRIBEs it sends, and every SUBACK code read.

Each SUBACK code is read per filter: 0x91 (packet id in use, held by a resumed session) is answered
with a SUBSCRIBE under another id; a refusal is logged once naming the filter and the reason, and
subscribed again with backoff (:data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MIN_S` ..
:data:`~mqtt_kafka_sync.mqtt.backoff.REFUSED_MAX_S`) when ``retriable``; a lower QoS than asked is
logged once at WARNING, with what it costs. The data SUBSCRIBE is also sent again on a schedule
(:meth:`Subscriptions._refresh`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable

from mqtt_kafka_sync.errors import MqttProtocolError
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.mqtt import reasons
from mqtt_kafka_sync.mqtt.backoff import REFUSED_MAX_S, REFUSED_MIN_S, Backoff
from mqtt_kafka_sync.mqtt.failures import OPERATOR_NEEDED, SUMMARY_EVERY, Failure, Failures
from mqtt_kafka_sync.mqtt.subscriber_settings import LOGGER_NAME, SubscriberSettings

logger = logging.getLogger(LOGGER_NAME)

SUBSCRIBE_ID_RETRIES = 10
"""SUBACK 0x91 (packet identifier in use) answered with another id at most this often per connection."""
REFRESH_AFTER_S = 1.0
"""The data SUBSCRIBE is sent a second time this long after its SUBACK (:meth:`Subscriptions._refresh`)."""
IDLE_REFRESH_S = 30.0
"""...and again whenever this long passed with the window open and no PUBLISH received."""
PACKET_ID_IN_USE = 0x91


class Subscriptions:
    """Where the subscriptions stand (network thread only); :meth:`connected` starts each connection.

    SUBSCRIBE packets go on the subscriber's ``control`` queue under ids from ``packet_id``;
    ``ready`` says whether an idle refresh may be sent (subscribed, window open).
    """

    def __init__(
        self,
        settings: SubscriberSettings,
        control: deque[bytes],
        packet_id: Callable[[], int],
        ready: Callable[[], bool],
        failures: Failures | None = None,
    ) -> None:
        self.settings = settings
        self.failures = failures if failures is not None else Failures()
        """Where a refused filter is reported (the subscriber's, shared with its connection)."""
        self._control = control
        self._packet_id = packet_id
        self._ready = ready
        self.refusal: str | None = None
        """The latest refusal in words, until the subscriber takes it."""
        self._logged_refusals: dict[str, int] = {}
        """What each filter's refusal last logged at ERROR, so a repeat logs at DEBUG."""
        self._downgrades_logged: set[str] = set()
        self.connected()

    def connected(self) -> None:
        """A new connection: nothing asked, refused or scheduled on it yet."""
        self.asked: dict[int, list[tuple[str, int]]] = {}
        """SUBSCRIBE packet id -> the (filter, QoS) it asked for, until its SUBACK."""
        self.refused: dict[str, tuple[int, int]] = {}
        """Filter -> (QoS asked, reason code) of subscriptions the broker refused."""
        self.again_at: float | None = None
        """Monotonic time to subscribe the refused filters again."""
        self.backoff = Backoff()
        self.id_retries = 0
        self.refresh_at: float | None = None
        """Monotonic time to send the data SUBSCRIBE again (:meth:`_refresh`)."""
        self.refreshes = 0
        self.refreshed_at = 0.0
        self.last_publish_at = time.monotonic()
        """When the latest PUBLISH was read (the subscriber's ``loop_turned_at`` then)."""

    def subscribe(
        self, wanted: list[tuple[str, int]], *, first: bool = False, retain_handling: int = 0
    ) -> int:
        """Queue a SUBSCRIBE for ``wanted`` (before anything else when ``first``); returns its id."""
        packet_id = self._packet_id()
        self.asked[packet_id] = wanted
        packet = p.encode_subscribe(packet_id, wanted, retain_handling=retain_handling)
        if first:
            self._control.appendleft(packet)
        else:
            self._control.append(packet)
        return packet_id

    def on_turn(self, now: float) -> None:
        """Send what is due: refused filters again, a refresh."""
        if self.again_at is not None and now >= self.again_at:
            self._subscribe_again()
        if self.refresh_at is not None:
            due = now >= self.refresh_at
        else:
            idle = now - max(self.last_publish_at, self.refreshed_at)
            due = self.refreshes > 0 and idle >= IDLE_REFRESH_S and self._ready()
        if due:
            self._refresh(now)

    # -- SUBACK: every code read, per filter ------------------------------------------------------
    def on_suback(self, packet: p.Ack) -> bool:
        """Read one SUBACK; True when every filter asked for is now granted (a refusal is left in
        :attr:`refusal`)."""
        s = self.settings
        asked = self.asked.pop(packet.packet_id, None)
        if asked is None:
            logger.debug("mqtt %s: SUBACK for unknown id %d", s.client_id, packet.packet_id)
            return False
        codes = packet.reason_codes
        if len(codes) != len(asked):
            raise MqttProtocolError(
                f"SUBACK {packet.packet_id} carries {len(codes)} reason codes for {len(asked)} filters"
            )
        in_use = []
        for (topic_filter, qos), code in zip(asked, codes, strict=True):
            if code < 0x80:
                self.refused.pop(topic_filter, None)
                self._logged_refusals.pop(topic_filter, None)
                if code < qos:
                    self._downgraded(topic_filter, qos, code)
            elif code == PACKET_ID_IN_USE and self.id_retries < SUBSCRIBE_ID_RETRIES:
                in_use.append((topic_filter, qos))
            else:
                self.refused[topic_filter] = (qos, code)
        if in_use:
            self.id_retries += 1
            packet_id = self.subscribe(in_use)
            logger.warning(
                "mqtt %s: broker %s:%d answered SUBACK %s for %s with packet id %d; subscribing again "
                "with packet id %d",
                s.client_id,
                s.host,
                s.port,
                reasons.describe(PACKET_ID_IN_USE, reasons.SUBACK),
                ", ".join(f for f, _ in in_use),
                packet.packet_id,
                packet_id,
            )
        if self.refused:
            self._subscriptions_refused()
            return False
        if self.asked:
            return False
        self.backoff.reset()
        self.failures.cleared("subscribe_refused")
        if self.refreshes == 0 and s.filters:
            self.refresh_at = time.monotonic() + REFRESH_AFTER_S
        return True

    def _refresh(self, now: float) -> None:
        """Send the data SUBSCRIBE again (Retain Handling 2: no retained messages come with it).

        HiveMQ CE can flag a connection as having no shared subscription when its SUBSCRIBE arrives
        just after CONNACK, before the subscription is stored; only another SUBSCRIBE clears the flag,
        and until then the worker gets one batch and nothing more while the backlog grows (issue 17
        item 7, docs/brokers.md). A broker that keeps the subscription replaces it with the same one.
        Sent once a second after the first SUBACK of each connection, and again after every
        ``IDLE_REFRESH_S`` with the window open and nothing received: a stall of that kind ends
        there, whatever its cause.
        """
        self.refresh_at = None
        self.refreshes += 1
        self.refreshed_at = now
        s = self.settings
        if self.refreshes > 1:
            logger.debug(
                "mqtt %s: nothing received for %.0fs; subscribing again", s.client_id, IDLE_REFRESH_S
            )
        self.subscribe([(f, s.qos) for f in s.filters], retain_handling=p.RETAIN_SEND_NEVER)

    def _subscriptions_refused(self) -> None:
        """Log each refused filter (ERROR the first time, a WARNING every ``SUMMARY_EVERY`` attempts
        while the answer repeats, DEBUG otherwise) and plan the next SUBSCRIBE with backoff: from
        ``REFUSED_MIN_S`` when a refusal may clear by itself, at the cap when none can."""
        s = self.settings
        retriable = any(reasons.lookup(code).retriable for _, code in self.refused.values())
        wait = self.backoff.next(REFUSED_MIN_S if retriable else REFUSED_MAX_S, REFUSED_MAX_S)
        if not self.asked:
            self.again_at = time.monotonic() + wait
        attempt = self.backoff.attempts
        for topic_filter, (_, code) in self.refused.items():
            words = reasons.describe(code, reasons.SUBACK)
            self.refusal = f"broker {s.host}:{s.port} refused the subscription to {topic_filter}: {words}"
            can_clear = reasons.lookup(code).retriable
            self.failures.failed(Failure("subscribe_refused", code, self.refusal, can_clear))
            then = f"subscribing again in {wait:.1f}s"
            first = self._logged_refusals.get(topic_filter) != code
            self._logged_refusals[topic_filter] = code
            level = (
                logging.ERROR if first else logging.WARNING if attempt % SUMMARY_EVERY == 0 else logging.DEBUG
            )
            logger.log(
                level,
                "mqtt %s: broker %s:%d refused the subscription to %s: %s; %s (attempt %d)",
                s.client_id,
                s.host,
                s.port,
                topic_filter,
                words,
                then if can_clear else f"{OPERATOR_NEEDED}; {then}",
                attempt,
            )

    def _subscribe_again(self) -> None:
        self.again_at = None
        wanted = [(f, qos) for f, (qos, _) in self.refused.items()]
        if wanted:
            self.subscribe(wanted)

    def _downgraded(self, topic_filter: str, asked: int, granted: int) -> None:
        """Logged once per filter: what the lower QoS costs."""
        if topic_filter in self._downgrades_logged:
            return
        self._downgrades_logged.add(topic_filter)
        meaning = (
            "the broker may send a message twice (at least once) and each copy becomes a Kafka "
            "record: duplicates are possible where QoS 2 promised none"
            if granted == 1
            else "the broker sends each message once without acknowledgement (at most once): a "
            "message in flight when the connection or this worker fails is lost"
        )
        logger.warning(
            "mqtt %s: broker %s:%d granted QoS %d for %s where QoS %d was asked: %s",
            self.settings.client_id,
            self.settings.host,
            self.settings.port,
            granted,
            topic_filter,
            asked,
            meaning,
        )
