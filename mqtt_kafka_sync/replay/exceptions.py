"""What the replay controller and the replay command raise.

::

    SyncError                       (mqtt_kafka_sync.errors)
    └── ReplayError                 a replay cannot be planned, resumed or finished; the message says
        │                           which topic, partition and offset, and what to do
        └── LagReadError            retriable: consumer lag could not be read (Kafka did not answer)
"""

from __future__ import annotations

from mqtt_kafka_sync.errors import SyncError


class ReplayError(SyncError):
    """A replay that cannot go on; what was confirmed is in the checkpoint."""


class LagReadError(ReplayError):
    """Kafka did not answer a lag query; the throttle holds its rate and asks again next interval."""

    retriable = True
