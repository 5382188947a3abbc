"""A broker that refuses us, as an episode: one ERROR line when it starts, quiet while it repeats.

The ingest subscriber (CONNACK, TLS, SUBACK) and the relay publisher (CONNACK) each keep one
:class:`Failures`: the refusal now in force (for ``/readyz``, through the task's shared-memory block)
and a count of refused attempts by reason (the ``connection_failures`` metric). :class:`Episode`
decides how loudly each attempt is logged: ERROR the first time a refusal is seen (and whenever it
changes), a WARNING summary every :data:`SUMMARY_EVERY` attempts while it repeats, DEBUG otherwise;
a healthy connection ends the episode. So a broker refusing us for an hour costs a handful of lines,
never one per attempt, and never a stack trace.

Reasons are short stable labels (``telemetry/catalog.py`` lists them):

==================  =========================================================================
``bad_credentials`` CONNACK 0x86 (3.1.1: return code 4)
``not_authorized``  CONNACK 0x87 (3.1.1: return code 5)
``refused``         any other refused CONNECT (``MqttConnectError`` without a reason of its own)
``tls``             the TLS handshake failed (bad or unknown certificate, host name mismatch)
``subscribe_refused`` a SUBACK refused a filter
==================  =========================================================================
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass

SUMMARY_EVERY = 10
"""While a refusal repeats, every this many attempts logs a WARNING summary (at the 60 s cap: ~10 min)."""


@dataclass(frozen=True, slots=True)
class Failure:
    """A refusal in force: ``reason`` a label of the module docstring, ``code`` the MQTT reason
    code when the broker gave one (0 otherwise), ``words`` what the ERROR line said."""

    reason: str
    code: int
    words: str
    retriable: bool = True


class Failures:
    """The refusal now in force and the refused attempts so far (the thread that connects writes,
    the task's probe reads plain attributes)."""

    def __init__(self) -> None:
        self.current: Failure | None = None
        self.counts: Counter[str] = Counter()
        self._episode = Episode()

    def failed(self, failure: Failure) -> None:
        """Count a refused attempt and keep it as the one in force (the caller logs it)."""
        self.current = failure
        self.counts[failure.reason] += 1

    def refused(
        self, failure: Failure, log: logging.Logger, client_id: str, wait: float, attempt: int
    ) -> None:
        """:meth:`failed`, and the line the episode calls for: ``mqtt <client id>: <words>; trying
        again in <wait>s (attempt n)``, saying an operator is needed when it is not ``retriable``."""
        self.failed(failure)
        then = f"trying again in {wait:.1f}s (attempt {attempt})"
        log.log(
            self._episode.level((failure.reason, failure.words), attempt),
            "mqtt %s: %s; %s",
            client_id,
            failure.words,
            then if failure.retriable else f"{OPERATOR_NEEDED}; {then}",
        )

    def cleared(self, *reasons: str) -> None:
        """The refusal ended (only if its reason is one of ``reasons``, when given)."""
        if self.current is not None and (not reasons or self.current.reason in reasons):
            self.current = None
        self._episode.end()


class Episode:
    """How loudly to log each attempt of a repeated refusal (see the module docstring)."""

    def __init__(self) -> None:
        self._seen: object = None

    def level(self, key: object, attempt: int) -> int:
        """ERROR for a refusal not seen since the last :meth:`end` (``key`` says which), WARNING
        every :data:`SUMMARY_EVERY` attempts of the same one, DEBUG otherwise."""
        if key != self._seen:
            self._seen = key
            return logging.ERROR
        return logging.WARNING if attempt % SUMMARY_EVERY == 0 else logging.DEBUG

    def end(self) -> None:
        self._seen = None


def connack_reason(code: int) -> str:
    """The label of a refused CONNACK's code (MQTT 5, and the 3.1.1 return codes 4 and 5)."""
    return {
        0x86: "bad_credentials",
        0x04: "bad_credentials",
        0x87: "not_authorized",
        0x05: "not_authorized",
    }.get(code, "refused")


CONNECT_REFUSALS = ("refused", "bad_credentials", "not_authorized", "tls")
"""The reasons a CONNECT attempt fails with (a SUBACK's is ``subscribe_refused``)."""

OPERATOR_NEEDED = "this will not clear by itself: an operator must change the broker's or our config"
"""Said of a refusal that is not ``retriable``; we still try again, at the slowest pace."""
