"""What a path that publishes commands counts (the relay task, the replay into MQTT)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class PublishCounters:
    """What a publishing path counts: the window counts the publishes, outages and stalls, its user
    the answers (the relay task's and the replay's stats extend this). Written by one thread, read by any."""

    published: int = 0
    """PUBLISH packets handed to paho, re-publishes included."""
    republished: int = 0
    outages: int = 0
    stalls: int = 0
    """Times no in-flight command was acknowledged for ``STALL_S`` while connected."""
    delivered: int = 0
    """Commands the broker acknowledged (PUBACK / PUBCOMP)."""
    dead_lettered: int = 0
    """Records the dead-letter topic confirmed."""
    dlq_by_reason: dict[str, int] = field(default_factory=dict)

    def count_dead_lettered(self, reason: str) -> None:
        """The dead-letter topic confirmed a record dead-lettered for ``reason``."""
        self.dead_lettered += 1
        self.dlq_by_reason[reason] = self.dlq_by_reason.get(reason, 0) + 1
