"""A :class:`~mqtt_kafka_sync.kafka.lag.LagReader` in a child process: the throttle's lag source
where no supervisor reads lag for it (a replay; an ingest task built outside ``run``). Under the
supervisor one reader process serves every throttle and the metrics (``lag_hub.py``).

librdkafka's admin client can crash the process it runs in: a NULL dereference when
ListConsumerGroupOffsets meets NOT_COORDINATOR, e.g. for a group whose coordinator is still loading
right after a broker start (librdkafka#5040, seen here with librdkafka 2.16). Reading lag inside an
ingest task or a replay would let that crash take the data path with it. So the reads run in a
child process of their own, one request at a time over a pipe::

    reader = IsolatedLagReader(bootstrap, ["historian"], topics=TopicTemplates(["site-{site}"]))
    lag = reader.read_lag()    # asks the child; raises LagReadError when it cannot answer
    reader.close()

A child that died (signal, exit) or does not answer in time is reported as a :class:`LagReadError`
naming its exit code, and the next read starts a new one: the throttle holds its rate in between,
exactly as when Kafka does not answer. A new child forgets the baselines the old one kept for
partitions without a commit (see ``lag.py``): those count from the new child's first read.
The child exits when its parent does: its end of the socket pair closes (after the read in
progress, if any). It is started by ``child_process.start_child``, not multiprocessing, so no
resource tracker comes with it.

confluent-kafka is imported in the child and where a reader is built, not at the top: the
supervisor imports this module (through ``lag_hub.py``) and need not carry it (docs/benchmarks.md).
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mqtt_kafka_sync.child_process import Channel, ChildEnd, ChildProcess, start_with_channel
from mqtt_kafka_sync.config.model import KafkaConnection
from mqtt_kafka_sync.errors import LagReadError
from mqtt_kafka_sync.kafka.lag_topics import TopicFilter
from mqtt_kafka_sync.logs import configure_logging

if TYPE_CHECKING:
    from mqtt_kafka_sync.kafka.settings import Kafka

logger = logging.getLogger(__name__)

START_GRACE_S = 30.0
"""Added to the first answer's deadline: a new child imports Python and confluent-kafka first."""


def how_it_ended(code: int | None) -> str:
    """A child's exit code in words: ``died (signal SIGSEGV)``, ``exited (code 3)``."""
    if code is None or code >= 0:
        return f"exited (code {code})"
    try:
        return f"died (signal {signal.Signals(-code).name})"
    except ValueError:
        return f"died (signal {-code})"


@dataclass(frozen=True)
class _ReaderSpec:
    """What the child builds its :class:`LagReader` from (pickled to it, secrets included: never
    logged, and :class:`~mqtt_kafka_sync.secret.Secret` values stay masked in any repr)."""

    kafka: KafkaConnection
    groups: tuple[str, ...]
    topics: TopicFilter | None
    timeout: float
    log_level: int


def _serve(spec: _ReaderSpec, end: ChildEnd) -> None:
    """The child: answer each request with ``("lag", int | None)`` or ``("error", text)``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent
    conn = end.open()
    configure_logging(spec.log_level)
    from mqtt_kafka_sync.kafka.lag import LagReader  # noqa: PLC0415 - see the module docstring

    reader = LagReader(spec.kafka, spec.groups, topics=spec.topics, timeout=spec.timeout)
    try:
        while True:
            try:
                if conn.recv() is None:
                    return
            except (EOFError, OSError):  # the parent is gone
                return
            try:
                answer: tuple[str, int | str | None] = ("lag", reader.read_lag())
            except LagReadError as exc:
                answer = ("error", str(exc))
            try:
                conn.send(answer)
            except OSError:
                return
    finally:
        reader.close()


class IsolatedLagReader:
    """``read_lag`` of a :class:`LagReader` that lives in a child process (started on first use): the
    throttle's lag source where no supervisor feeds one (a replay, a task run on its own).

    ``topics`` must be picklable (e.g. :class:`~mqtt_kafka_sync.kafka.lag_topics.TopicTemplates`),
    since the child builds its reader from it. Safe to call from several threads (one at a time).
    """

    def __init__(
        self,
        kafka: Kafka,
        groups: Sequence[str],
        *,
        topics: TopicFilter | None = None,
        timeout: float = 10.0,
        name: str = "lag-reader",
    ) -> None:
        from mqtt_kafka_sync.kafka.lag import unique_groups  # noqa: PLC0415
        from mqtt_kafka_sync.kafka.settings import connection  # noqa: PLC0415

        self.kafka = connection(kafka)
        self.bootstrap = self.kafka.bootstrap_servers
        self.groups = unique_groups(groups)
        self._topics = topics
        self._timeout = timeout
        self._name = name
        self._lock = threading.Lock()
        self._process: ChildProcess | None = None
        self._conn: Channel | None = None
        self._closed = False
        self.started = 0
        """Children started so far (more than one: after a crash or a hang)."""

    @property
    def pid(self) -> int | None:
        """The child's pid while one runs."""
        return self._process.pid if self._process is not None else None

    def read_lag(self) -> int | None:
        """The largest group total now (see :meth:`LagReader.read_lag`); raises :class:`LagReadError`
        when Kafka does not answer, or the child died or hung (a new one answers the next call)."""
        with self._lock:
            if self._closed:
                raise LagReadError("the lag reader is closed")
            conn = self._conn
            fresh = conn is None
            if conn is None:
                conn = self._start()
            # A read makes about five admin requests, each bounded by the timeout.
            deadline = 5 * self._timeout + (START_GRACE_S if fresh else 0.0)
            try:
                conn.send(True)
                if not conn.poll(deadline):
                    self._discard(kill=True)
                    raise LagReadError(
                        f"lag reader process gave no answer in {deadline:.0f}s; starting a new one"
                    )
                kind, value = conn.recv()
            except (EOFError, OSError):
                code = self._discard(kill=False)
                raise LagReadError(f"lag reader process {how_it_ended(code)}; starting a new one") from None
        if kind == "error":
            raise LagReadError(str(value))
        return value if isinstance(value, int) else None

    def close(self) -> None:
        """Stop the child. Never waits for a read in progress: that child is killed instead (the
        read then fails with :class:`LagReadError`), so a shutdown is not held up by Kafka."""
        self._closed = True
        if not self._lock.acquire(blocking=False):
            process = self._process
            if process is not None and process.is_alive():
                process.kill()
            return
        try:
            if self._conn is not None:
                with contextlib.suppress(OSError):
                    self._conn.send(None)
            self._discard(kill=False, wait=2.0)
        finally:
            self._lock.release()

    # -- internals --------------------------------------------------------------------------------
    def _start(self) -> Channel:
        spec = _ReaderSpec(
            self.kafka, self.groups, self._topics, self._timeout, logging.getLogger().getEffectiveLevel()
        )
        try:
            process, parent = start_with_channel(_serve, name=self._name, args=(spec,), duplex=True)
        except OSError as exc:
            raise LagReadError(f"cannot start the lag reader process ({exc})") from None
        self.started += 1
        self._process, self._conn = process, parent
        return parent

    def _discard(self, *, kill: bool, wait: float = 5.0) -> int | None:
        """Forget the child (killing it if asked); its exit code if it ended."""
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if conn is not None:
            conn.close()
        if process is None:
            return None
        if kill and process.is_alive():
            process.kill()
        process.join(wait)
        if process.is_alive():
            process.kill()
            process.join(wait)
        return process.exitcode
