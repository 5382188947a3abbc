"""What the replay controller and the replay command raise.

::

    SyncError                       (mqtt_kafka_sync.errors)
    └── ReplayError                 a replay cannot be planned, resumed or finished; the message says
                                    which topic, partition and offset, and what to do

(``LagReadError``, which the lag reader raises for the throttle and the metrics alike, is in
:mod:`mqtt_kafka_sync.errors`.)
"""

from __future__ import annotations

from mqtt_kafka_sync.errors import SyncError


class ReplayError(SyncError):
    """A replay that cannot go on; what was confirmed is in the checkpoint."""
