"""Whether a librdkafka client is connected, and whether Kafka refuses it: for logs, metrics, /readyz.

Every Kafka client of a task (the producer, the relay's consumer) gives its ``stats_cb`` and
``error_cb`` to a :class:`ConnectionState`. A refusal (``_AUTHENTICATION``: SASL credentials or
mechanism wrong; ``_SSL``: the TLS handshake failed) is an episode: one ERROR line naming the client,
the bootstrap servers and the reason when it starts, nothing more while librdkafka repeats it (its
own reconnect backoff, ``reconnect.backoff.ms`` to ``reconnect.backoff.max.ms``, paces the attempts),
and it ends when a broker connection is up. librdkafka's text may quote the user name, never the
password; any secret of the client's settings that shows in it is masked anyway.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping

import orjson
from confluent_kafka import KafkaError

logger = logging.getLogger(__name__)

STATISTICS_INTERVAL_MS = "1000"
"""How often librdkafka reports its state (served by poll): our Kafka connection flag comes from it."""

REFUSALS = {KafkaError._AUTHENTICATION: "auth", KafkaError._SSL: "tls"}
"""librdkafka errors that mean Kafka refuses this client, and their metric label."""
REFUSAL_WORDS = {"auth": "authentication failed", "tls": "TLS handshake failed"}
SECRET_MARKERS = ("password", "secret", "basic.auth.user.info")
"""Settings whose values are masked in any text we log."""


class ConnectionState:
    """Whether a librdkafka client has a broker connection up, from its statistics and errors.

    ``stats_cb`` and ``error_cb`` of the client call :meth:`on_stats` and :meth:`on_error` (on the
    thread that polls it); :attr:`errors` counts errors. :attr:`up` turns false at once on "all
    brokers down" (the client logs that itself) and follows the statistics otherwise, with one log
    line per change: the first connection at INFO, a loss and a recovery at WARNING. A refusal is
    kept in :attr:`refusal` (its label) until a broker connection is up, and counted in
    :attr:`refusals` by label.
    """

    def __init__(self, what: str, settings: Mapping[str, object] | None = None) -> None:
        self.what = what
        """The client, in words: "kafka producer <client.id>", "kafka consumer (group g)"."""
        settings = settings or {}
        self.bootstrap = str(settings.get("bootstrap.servers", ""))
        self._secrets = [
            str(value)
            for key, value in settings.items()
            if any(marker in key for marker in SECRET_MARKERS) and value
        ]
        self.up = False
        self.errors = 0
        self.refusal: str | None = None
        self.refusals: Counter[str] = Counter()
        self._ever_up = False

    def on_stats(self, stats_json: str) -> None:
        try:
            brokers = orjson.loads(stats_json).get("brokers") or {}
        except (orjson.JSONDecodeError, AttributeError):
            return
        self._set(any(isinstance(b, dict) and b.get("state") == "UP" for b in brokers.values()))

    def on_error(self, err: KafkaError) -> bool:
        """Count ``err``; True when it is a refusal, which this state has logged (the client logs
        nothing more about it)."""
        self.errors += 1
        code = err.code()
        if code == KafkaError._ALL_BROKERS_DOWN:
            self.up = False
        reason = REFUSALS.get(code)
        if reason is None:
            return False
        self.up = False
        self.refusals[reason] += 1
        if self.refusal != reason:
            self.refusal = reason
            logger.error(
                "%s: Kafka at %s refused us: %s (%s); librdkafka tries again with backoff",
                self.what,
                self.bootstrap,
                REFUSAL_WORDS[reason],
                self.masked(err.str()),
            )
        return True

    def masked(self, text: str) -> str:
        """``text`` with every secret value of the client's settings replaced by ``*****``."""
        for secret in self._secrets:
            text = text.replace(secret, "*****")
        return text

    def _set(self, up: bool) -> None:
        if up and not self.up:
            log = logger.warning if self._ever_up or self.refusal else logger.info
            log("%s: connected to Kafka", self.what)
            self._ever_up = True
            self.refusal = None
        elif self.up and not up:
            logger.warning("%s: no Kafka broker connection up", self.what)
        self.up = up


class ConnectionReports:
    """``kafka_up``, ``errors`` and the refusal (for /readyz and metrics) of a client with a
    :class:`ConnectionState`."""

    connection: ConnectionState

    @property
    def kafka_up(self) -> bool:
        """A broker connection is up (librdkafka's statistics, every ``statistics.interval.ms``)."""
        return self.connection.up

    @property
    def errors(self) -> int:
        """Errors librdkafka reported, for metrics."""
        return self.connection.errors

    @property
    def kafka_refusal(self) -> str | None:
        """Kafka refuses this client now: ``auth`` or ``tls`` (None when it does not)."""
        return self.connection.refusal

    @property
    def kafka_refusals(self) -> Mapping[str, int]:
        """Refusals librdkafka reported so far, by label."""
        return self.connection.refusals
