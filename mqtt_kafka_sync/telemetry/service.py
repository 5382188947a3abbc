"""What ``mqtt-kafka-sync run`` adds to the supervisor: the metrics port and OTLP export.

The supervisor owns the task slots and the lag reader (``kafka/lag_hub.py``); it gives this service a
function returning the slots' snapshots and one returning the latest consumer lag.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from mqtt_kafka_sync.telemetry.exporter import Exporter
from mqtt_kafka_sync.telemetry.http import MetricsServer
from mqtt_kafka_sync.telemetry.settings import TelemetrySettings
from mqtt_kafka_sync.telemetry.shared import TaskSnapshot

if TYPE_CHECKING:  # the supervisor without a lag reader never loads confluent-kafka
    from mqtt_kafka_sync.kafka.lag import LagSample

logger = logging.getLogger(__name__)

SNAPSHOT_TTL_S = 0.25
"""One scrape runs a callback per metric; they share one copy of the blocks."""


class TelemetryService:
    def __init__(
        self,
        settings: TelemetrySettings,
        snapshots: Callable[[], list[TaskSnapshot]],
        lag_samples: Callable[[], list[LagSample]] = list,
    ) -> None:
        """``lag_samples``: every watched partition with a lag now (none without a lag reader)."""
        self.settings = settings
        self._read = snapshots
        self._lag_samples = lag_samples
        self._cache: tuple[float, list[TaskSnapshot]] = (-1.0, [])
        self._lock = threading.Lock()
        self.stopping = False
        self.exporter = Exporter(self, settings)
        self.server: MetricsServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind the port (raises TelemetryError when taken), then serve in the background."""
        if self.settings.port:
            self.server = MetricsServer(
                self.settings.host, self.settings.port, self.exporter.scrape, self.readiness, self.liveness
            )
            self._thread = threading.Thread(
                target=self.server.serve_forever, name="metrics-http", daemon=True
            )
            self._thread.start()
            logger.info("metrics on http://%s:%d/metrics", self.settings.host, self.server.port)

    def stop(self) -> None:
        self.stopping = True
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
        self.exporter.shutdown()

    # -- Source ---------------------------------------------------------------------------------
    def snapshots(self) -> list[TaskSnapshot]:
        with self._lock:
            at, cached = self._cache
            now = time.monotonic()
            if now - at > SNAPSHOT_TTL_S:
                cached = self._read()
                self._cache = (now, cached)
            return cached

    def lag_points(self) -> list[LagSample]:
        return self._lag_samples()

    # -- /healthz -------------------------------------------------------------------------------
    def liveness(self) -> tuple[bool, str]:
        """Alive unless a running task's network loop has not turned for ``liveness_timeout_s``."""
        wedged = [
            f"{snap.name}: network loop has not turned for {age:.0f}s"
            for snap in self._read()
            if (age := snap.loop_age()) is not None and age > self.settings.liveness_timeout_s
        ]
        if wedged:
            return False, "wedged:\n" + "\n".join(wedged) + "\n"
        return True, "ok\n"

    # -- /readyz --------------------------------------------------------------------------------
    def readiness(self) -> tuple[bool, str]:
        if self.stopping:
            return False, "stopping\n"
        lines = []
        owners = []
        now = time.monotonic()
        for snap in self._read():
            problems = snap.problems(now)
            if problems:
                lines.append(f"{snap.name}: {', '.join(problems)}")
            if snap.layout.shard_filters and snap.alive:
                owners.append(f"{snap.name} owns shards: {', '.join(snap.owned_shards()) or 'none'}")
        shards = "".join(f"{line}\n" for line in owners)
        if lines:
            return False, "not ready:\n" + "\n".join(lines) + "\n" + shards
        return True, "ready\n" + shards
