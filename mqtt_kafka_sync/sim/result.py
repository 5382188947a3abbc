"""What a simulator run did: each client's :class:`Tally`, summed up into a :class:`SimResult`."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field

_log = logging.getLogger(__name__)

MAX_STORED_ERRORS = 100
"""Error descriptions kept per client; failures beyond are only counted."""


@dataclass(frozen=True)
class SimResult:
    """What a simulator run did. ``sent`` counts messages paho accepted, ``acked`` the ones the
    broker acknowledged (QoS 0: written to the socket)."""

    sent: int
    acked: int
    per_device_last_seq: dict[str, int]
    """Last ``seq`` handed to paho per device: what a complete delivery must contain."""
    elapsed_s: float
    errors: list[str]
    """Up to :data:`MAX_STORED_ERRORS` descriptions per client, then one line with the number left out."""
    failed: int = 0
    """Messages that failed: publish() refused, a reason code >= 0x80, or never acknowledged."""
    per_device_acked_seq: dict[str, int] = field(default_factory=dict)
    """Per device, the largest ``n`` with seqs 1..n all acknowledged: what must survive a crash."""

    @property
    def ok(self) -> bool:
        return self.failed == 0 and not self.errors and self.acked == self.sent

    @property
    def rate(self) -> float:
        """Messages sent per second."""
        return self.sent / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        return (
            f"devices={len(self.per_device_last_seq)} sent={self.sent} acked={self.acked} "
            f"failed={self.failed} elapsed={self.elapsed_s:.2f}s rate={self.rate:.0f}/s"
        )

    @classmethod
    def of(cls, tallies: Iterable[Tally], elapsed_s: float) -> SimResult:
        """The sum of every client's tally."""
        last: dict[str, int] = {}
        acked_prefix: dict[str, int] = {}
        errors: list[str] = []
        sent = acked = failed = 0
        for tally in tallies:
            last.update(zip(tally.devices, tally.last_seq, strict=True))
            acked_prefix.update(zip(tally.devices, tally.acked_prefix, strict=True))
            errors.extend(tally.errors)
            sent, acked, failed = sent + tally.sent, acked + tally.acked, failed + tally.failed
        if failed > len(errors):
            errors.append(f"... {failed - len(errors)} more failures not listed")
        return cls(
            sent=sent,
            acked=acked,
            per_device_last_seq=last,
            elapsed_s=elapsed_s,
            errors=errors,
            failed=failed,
            per_device_acked_seq=acked_prefix,
        )


class Tally:
    """What one client did for its devices (each by its index in ``devices``). Not locked: its
    client updates it with its own lock held; ``sent`` and ``acked`` may be read any time."""

    def __init__(self, client_id: str, devices: list[str]) -> None:
        self.client_id = client_id
        self.devices = devices
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.errors: list[str] = []
        self.last_seq = [0] * len(devices)
        """Per device, the last seq handed to paho."""
        self.acked_prefix = [0] * len(devices)
        """Per device, the largest ``n`` with seqs 1..n all acknowledged."""
        self._acked_ahead: list[set[int]] = [set() for _ in devices]

    def count_sent(self, index: int, seq: int) -> None:
        self.sent += 1
        self.last_seq[index] = seq

    def count_acked(self, index: int, seq: int) -> None:
        self.acked += 1
        if seq == self.acked_prefix[index] + 1:
            prefix, ahead = seq, self._acked_ahead[index]
            while prefix + 1 in ahead:
                prefix += 1
                ahead.remove(prefix)
            self.acked_prefix[index] = prefix
        else:
            self._acked_ahead[index].add(seq)

    def count_failed(self, error: str) -> None:
        """One failed message; the first :data:`MAX_STORED_ERRORS` are described and logged."""
        self.failed += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append(f"{self.client_id}: {error}")
            _log.error("MQTT client %s: %s", self.client_id, error)
