"""The device simulator: many devices publishing numbered telemetry over a few MQTT clients.

Devices are dealt round-robin to ``clients`` paho clients. Each client publishes from its own
thread, ``seq`` 1 for all of its devices, then ``seq`` 2, and so on, so every device's messages
leave in sequence order through one connection. A client publishes only while fewer than its
window of QoS>0 messages await PUBACK/PUBCOMP: the window is ``max_inflight``, lowered to the
broker's Receive Maximum from CONNACK, and paho's own in-flight limit is raised to
``max_inflight`` so paho never queues behind our back.

Clients connect with ``clean_start=False`` and a session expiry. When the broker drops a client,
paho reconnects and re-sends every unacknowledged QoS>0 message with the DUP flag, so a run
survives a broker restart; the duplicates this may cause are expected and counted downstream.
New messages wait until those re-sends are acknowledged, so each device's order still holds.

Every ``publish()`` return code and every PUBACK/PUBCOMP reason code is checked: a failure is
counted in ``SimResult.failed`` and described in ``SimResult.errors``, never dropped silently.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessageInfo
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_kafka_sync.errors import MqttConnectError, MqttError
from mqtt_kafka_sync.sim.payload import TELEMETRY_TOPIC_TEMPLATE, device_ids, device_topic, make_payload

_log = logging.getLogger(__name__)

MAX_STORED_ERRORS = 100
_WAKE_S = 0.1


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
    """Up to :data:`MAX_STORED_ERRORS` descriptions, then one line with the number left out."""
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


@dataclass(frozen=True)
class _Settings:
    host: str
    port: int
    qos: int
    payload_size: int
    user_properties: Properties | None
    max_inflight: int
    keepalive_s: int
    session_expiry_s: int
    ack_timeout_s: float


class _Control:
    """Shared by the workers of one run: the stop request and how long to drain after it."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.drain_until = float("inf")


def _no_delay(client: Client, userdata: object, sock: object) -> None:
    """Disable Nagle: paho leaves it on, and a window's last PUBLISH would wait ~40 ms for a TCP ACK."""
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _new_client(client_id: str) -> Client:
    client = Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=MQTTProtocolVersion.MQTTv5)
    client.on_socket_open = _no_delay
    if _log.isEnabledFor(logging.DEBUG):  # paho also logs a harmless ERROR at every disconnect
        client.enable_logger(logging.getLogger(f"{__name__}.paho"))
    client.reconnect_delay_set(min_delay=1, max_delay=4)
    return client


def _check_template(template: str) -> None:
    try:
        sample = template.format(plant="p01", device="d0001")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"topic template {template!r} may use only {{plant}} and {{device}}: {exc}"
        ) from None
    if not sample or "+" in sample or "#" in sample:
        raise ValueError(f"topic template {template!r} must give a topic without wildcards")


def _release(client: Client, properties: Properties | None = None) -> None:
    """Disconnect (also ends paho's reconnect attempts), stop the network thread, and close the
    socket pair paho wakes that thread with; paho itself closes it only in ``__del__``, which
    comes too late for a client in a reference cycle (ResourceWarning)."""
    client.disconnect(properties=properties if client.is_connected() else None)
    client.loop_stop()
    client.reinitialise()  # the one public call that closes those sockets


def _properties(packet_type: int) -> Properties:
    return Properties(packet_type)  # type: ignore[no-untyped-call]  # paho leaves __init__ unannotated


def _session_properties(packet_type: int, expiry_s: int) -> Properties:
    props = _properties(packet_type)
    props.SessionExpiryInterval = expiry_s
    return props


def _user_properties(values: dict[str, str] | None) -> Properties | None:
    if not values:
        return None
    props = _properties(PacketTypes.PUBLISH)
    props.UserProperty = list(values.items())
    return props


class _Worker:
    """One paho client publishing all messages of its devices, in sequence order per device."""

    def __init__(
        self,
        client_id: str,
        devices: list[str],
        topics: list[str],
        *,
        messages: int,
        rate: float | None,
        settings: _Settings,
        control: _Control,
    ) -> None:
        self.client_id = client_id
        self.devices = devices
        self._topics = topics
        self._messages = messages
        self._rate = rate
        self._settings = settings
        self._control = control
        self._cond = threading.Condition()
        self._pending: dict[int, tuple[int, int, MQTTMessageInfo]] = {}
        self._early: dict[int, ReasonCode | None] = {}
        self._window = settings.max_inflight
        self._connected = threading.Event()  # set at the first CONNACK, for start()
        self._online = False  # between a CONNACK and the next disconnect
        self._resync = False  # since a disconnect, until paho re-sent and the broker acked the backlog
        self._refusal = ""
        self._closing = False
        self._last_progress = time.monotonic()
        self.sent = 0
        self.acked = 0
        self.failed = 0
        self.errors: list[str] = []
        self.last_seq = [0] * len(devices)
        self.acked_prefix = [0] * len(devices)
        self._acked_ahead: list[set[int]] = [set() for _ in devices]
        self.finished_at = 0.0
        self._started_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"sim-{client_id}", daemon=True)
        self.client = _new_client(client_id)
        self.client.max_inflight_messages_set(settings.max_inflight)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        props = _session_properties(PacketTypes.CONNECT, self._settings.session_expiry_s)
        self.client.connect_async(
            self._settings.host,
            self._settings.port,
            keepalive=self._settings.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    @property
    def refusal(self) -> str:
        """Why the broker refused the last connection attempt, if it answered at all."""
        return self._refusal

    def close(self) -> None:
        self._closing = True
        # Our session holds nothing worth keeping: let the broker drop it now.
        _release(self.client, _session_properties(PacketTypes.DISCONNECT, 0))

    def _on_connect(
        self,
        client: Client,
        userdata: object,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self._refusal = f"broker refused the connection: {reason}"
            _log.warning("MQTT client %s: %s", self.client_id, self._refusal)
            return
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        with self._cond:
            if isinstance(receive_maximum, int):
                self._window = max(1, min(self._settings.max_inflight, receive_maximum))
            waiting = len(self._pending)
            self._online = True
            self._last_progress = time.monotonic()
            self._check_resynced()
            self._cond.notify_all()
        if self._connected.is_set():
            _log.info(
                "MQTT client %s reconnected (session present: %s); %d publishes awaiting ack",
                self.client_id,
                flags.session_present,
                waiting,
            )
        self._connected.set()

    def _on_disconnect(
        self,
        client: Client,
        userdata: object,
        flags: DisconnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            self._online = False
            self._resync = True
        if not self._closing:
            _log.warning(
                "MQTT client %s lost its connection to %s:%d (%s); paho reconnects",
                self.client_id,
                self._settings.host,
                self._settings.port,
                reason,
            )

    # -- acknowledgements ---------------------------------------------------------------------

    def _on_publish(
        self,
        client: Client,
        userdata: object,
        mid: int,
        reason: ReasonCode | None,
        properties: Properties | None,
    ) -> None:
        with self._cond:
            if mid in self._pending:
                self._complete(mid, reason)
            else:  # acknowledged before publish() returned to _send()
                self._early[mid] = reason

    def _complete(self, mid: int, reason: ReasonCode | None) -> None:
        """Account for the ack of ``mid``; called with ``_cond`` held."""
        index, seq, _ = self._pending.pop(mid)
        self._last_progress = time.monotonic()
        self._cond.notify_all()
        self._check_resynced()
        if reason is not None and reason.is_failure:
            self._fail(f"publish of {self.devices[index]} seq {seq} to {self._topics[index]}: {reason}")
            return
        self.acked += 1
        if seq == self.acked_prefix[index] + 1:
            prefix, ahead = seq, self._acked_ahead[index]
            while prefix + 1 in ahead:
                prefix += 1
                ahead.remove(prefix)
            self.acked_prefix[index] = prefix
        else:
            self._acked_ahead[index].add(seq)

    def _fail(self, error: str) -> None:
        """Count one failed message; called with ``_cond`` held."""
        self.failed += 1
        if len(self.errors) < MAX_STORED_ERRORS:
            self.errors.append(f"{self.client_id}: {error}")
            _log.error("MQTT client %s: %s", self.client_id, error)

    def _sweep_lost_qos0(self) -> None:
        """QoS 0 messages still queued in paho when the connection broke are lost without a callback."""
        conn_lost = MQTTErrorCode.MQTT_ERR_CONN_LOST
        lost = [mid for mid, (_, _, info) in self._pending.items() if info.rc == conn_lost]
        for mid in lost:
            index, seq, _ = self._pending.pop(mid)
            self._fail(f"QoS 0 publish of {self.devices[index]} seq {seq} lost on disconnect")
        if lost:
            self._cond.notify_all()
            self._check_resynced()

    def _check_resynced(self) -> None:
        """After a reconnect, new messages wait until paho re-sent every older one and the broker
        acked them: paho would send a new PUBLISH ahead of its re-sends if it came between the
        TCP connect and the CONNACK, and that device's messages would arrive out of order.
        Called with ``_cond`` held."""
        if self._resync and self._online and not self._pending:
            self._resync = False
            self._cond.notify_all()

    def _stalled(self) -> bool:
        return time.monotonic() - self._last_progress > self._settings.ack_timeout_s

    # -- publishing ---------------------------------------------------------------------------

    def start(self, started_at: float) -> None:
        self._started_at = started_at
        self._thread.start()

    def join(self, timeout_s: float | None = None) -> bool:
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        try:
            self._publish_all()
            self._await_acks()
        except Exception:  # noqa: BLE001  # a bug must not leave the run hanging
            _log.exception("MQTT client %s: simulator worker crashed", self.client_id)
            with self._cond:
                self._fail("simulator worker crashed (see log)")
        finally:
            self.finished_at = time.monotonic()
            self.close()

    def _publish_all(self) -> None:
        k = 0
        for seq in range(1, self._messages + 1):
            for index in range(len(self.devices)):
                if self._control.stop.is_set():
                    return
                if self._rate:
                    delay = self._started_at + k / self._rate - time.monotonic()
                    if delay > 0 and self._control.stop.wait(delay):
                        return
                if not self._reserve_slot():
                    return
                self._send(index, seq)
                k += 1

    def _reserve_slot(self) -> bool:
        """Wait until connected, resynced and the window has room; ``False`` when stopped or when
        neither an ack nor a reconnect came for ``ack_timeout_s``."""
        with self._cond:
            if not self._pending:
                self._last_progress = time.monotonic()
            while not self._online or self._resync or len(self._pending) >= self._window:
                if self._control.stop.is_set():
                    return False
                if self._stalled():
                    state = "connected" if self._online else "disconnected"
                    self._fail(
                        f"no progress for {self._settings.ack_timeout_s:.0f}s ({state}, "
                        f"{len(self._pending)} in flight); giving up publishing"
                    )
                    return False
                if self._settings.qos == 0:
                    self._sweep_lost_qos0()
                self._cond.wait(_WAKE_S)
            return True

    def _send(self, index: int, seq: int) -> None:
        topic, device = self._topics[index], self.devices[index]
        payload = make_payload(device, seq, self._settings.payload_size)
        info = self.client.publish(
            topic, payload, self._settings.qos, properties=self._settings.user_properties
        )
        # NO_CONN with QoS>0: paho keeps the message and sends it after reconnecting.
        queued = info.rc == MQTTErrorCode.MQTT_ERR_NO_CONN and self._settings.qos > 0
        with self._cond:
            if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS and not queued:
                self._fail(f"publish() of {device} seq {seq} to {topic} returned {info.rc.name}")
                return
            self.sent += 1
            self.last_seq[index] = seq
            self._pending[info.mid] = (index, seq, info)
            if info.mid in self._early:
                self._complete(info.mid, self._early.pop(info.mid))

    def _await_acks(self) -> None:
        with self._cond:
            while self._pending:
                if self._control.stop.is_set() and time.monotonic() >= self._control.drain_until:
                    break
                if self._stalled():
                    break
                if self._settings.qos == 0:
                    self._sweep_lost_qos0()
                self._cond.wait(_WAKE_S)
            for index, seq, _ in self._pending.values():
                self._fail(f"publish of {self.devices[index]} seq {seq} was never acknowledged")
            self._pending.clear()


class DeviceSimulator:
    """Simulated devices publishing ``messages_per_device`` telemetry messages each.

    ``rate`` is the total target in messages per second, paced open-loop (a client that falls
    behind catches up without waiting); ``None`` publishes as fast as the windows allow.
    Use :meth:`run` to publish everything and wait, or :meth:`start`, the live :attr:`sent` and
    :attr:`acked` counters, and :meth:`stop` / :meth:`wait`.
    """

    def __init__(
        self,
        mqtt_host: str,
        mqtt_port: int,
        devices: int,
        messages_per_device: int,
        *,
        qos: int = 1,
        rate: float | None = None,
        payload_size: int = 200,
        clients: int = 4,
        topic_template: str = TELEMETRY_TOPIC_TEMPLATE,
        client_id_prefix: str | None = None,
        user_properties: dict[str, str] | None = None,
        plants: int | None = None,
        max_inflight: int = 1000,
        keepalive_s: int = 30,
        session_expiry_s: int = 300,
        connect_timeout_s: float = 10.0,
        ack_timeout_s: float = 60.0,
    ) -> None:
        if qos not in (0, 1, 2):
            raise ValueError(f"qos must be 0, 1 or 2, got {qos}")
        if clients < 1 or max_inflight < 1 or messages_per_device < 0:
            raise ValueError("clients and max_inflight must be >= 1, messages_per_device >= 0")
        if rate is not None and rate <= 0:
            raise ValueError(f"rate must be > 0 messages/s or None, got {rate}")
        _check_template(topic_template)
        self.mqtt_host = mqtt_host
        self.mqtt_port = mqtt_port
        self.device_ids = device_ids(devices, plants)
        self.messages_per_device = messages_per_device
        self.qos = qos
        self.topic_template = topic_template
        self.client_id_prefix = client_id_prefix or f"sim-{uuid.uuid4().hex[:8]}"
        self._rate = rate
        self._clients = min(clients, max(1, devices))
        self._connect_timeout_s = connect_timeout_s
        self._settings = _Settings(
            host=mqtt_host,
            port=mqtt_port,
            qos=qos,
            payload_size=payload_size,
            user_properties=_user_properties(user_properties),
            max_inflight=max_inflight,
            keepalive_s=keepalive_s,
            session_expiry_s=session_expiry_s,
            ack_timeout_s=ack_timeout_s,
        )
        self._user_properties = user_properties
        self._control = _Control()
        self._workers: list[_Worker] = []
        self._started_at = 0.0
        self._result: SimResult | None = None

    @property
    def expected(self) -> dict[str, int]:
        """Device id -> last seq of a complete run."""
        return dict.fromkeys(self.device_ids, self.messages_per_device)

    @property
    def sent(self) -> int:
        return sum(w.sent for w in self._workers)

    @property
    def acked(self) -> int:
        return sum(w.acked for w in self._workers)

    @property
    def running(self) -> bool:
        return bool(self._workers) and self._result is None

    def run(self) -> SimResult:
        """Publish every message and wait until the broker acknowledged each one."""
        self.start()
        result = self.wait()
        assert result is not None
        return result

    def start(self) -> None:
        """Connect every client (raises :class:`MqttConnectError`), then publish in the background."""
        if self._workers:
            raise RuntimeError("a DeviceSimulator runs once; make a new one")
        total = len(self.device_ids)
        for i in range(self._clients):
            ids = self.device_ids[i :: self._clients]
            rate = self._rate * len(ids) / total if self._rate else None
            topics = [device_topic(d, self.topic_template) for d in ids]
            self._workers.append(
                _Worker(
                    f"{self.client_id_prefix}-{i}",
                    ids,
                    topics,
                    messages=self.messages_per_device,
                    rate=rate,
                    settings=self._settings,
                    control=self._control,
                )
            )
        for worker in self._workers:
            worker.connect()
        deadline = time.monotonic() + self._connect_timeout_s
        for worker in self._workers:
            if not worker.wait_connected(max(0.0, deadline - time.monotonic())):
                for w in self._workers:  # first stop every reconnect loop, then wait for each
                    w.client.disconnect()
                for w in self._workers:
                    w.close()
                raise MqttConnectError(
                    f"simulator client {worker.client_id} could not connect to {self.mqtt_host}:"
                    f"{self.mqtt_port} within {self._connect_timeout_s:g}s"
                    + (f": {worker.refusal}" if worker.refusal else "")
                )
        self._started_at = time.monotonic()
        for worker in self._workers:
            worker.start(self._started_at)

    def wait(self, timeout_s: float | None = None) -> SimResult | None:
        """The result once every client finished, or ``None`` if ``timeout_s`` passed first."""
        if self._result is not None:
            return self._result
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for worker in self._workers:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not worker.join(left):
                return None
        self._result = self._collect()
        return self._result

    def stop(self, drain_s: float = 5.0) -> SimResult:
        """Stop publishing, wait up to ``drain_s`` for outstanding acks, disconnect, and report."""
        self._control.drain_until = time.monotonic() + drain_s
        self._control.stop.set()
        result = self.wait()
        assert result is not None
        return result

    def publish_raw(
        self,
        topic: str,
        payload: bytes | str,
        qos: int = 1,
        *,
        retain: bool = False,
        timeout_s: float = 10.0,
    ) -> None:
        """Publish one arbitrary message (bad JSON, unroutable topic, ...) with a short-lived client."""
        publish_raw(
            self.mqtt_host,
            self.mqtt_port,
            topic,
            payload,
            qos,
            retain=retain,
            user_properties=self._user_properties,
            timeout_s=timeout_s,
        )

    def _collect(self) -> SimResult:
        last: dict[str, int] = {}
        acked_prefix: dict[str, int] = {}
        errors: list[str] = []
        failed = 0
        for worker in self._workers:
            last.update(zip(worker.devices, worker.last_seq, strict=True))
            acked_prefix.update(zip(worker.devices, worker.acked_prefix, strict=True))
            errors.extend(worker.errors)
            failed += worker.failed
        if failed > len(errors):
            errors.append(f"... {failed - len(errors)} more failures not listed")
        end = max((w.finished_at for w in self._workers), default=self._started_at)
        return SimResult(
            sent=self.sent,
            acked=self.acked,
            per_device_last_seq=last,
            elapsed_s=max(0.0, end - self._started_at),
            errors=errors,
            failed=failed,
            per_device_acked_seq=acked_prefix,
        )


def publish_raw(
    host: str,
    port: int,
    topic: str,
    payload: bytes | str,
    qos: int = 1,
    *,
    retain: bool = False,
    user_properties: dict[str, str] | None = None,
    timeout_s: float = 10.0,
) -> None:
    """Publish one message and wait for its PUBACK/PUBCOMP; raises :class:`MqttError` on any failure."""
    client = _new_client(f"sim-raw-{uuid.uuid4().hex[:8]}")
    connected = threading.Event()
    reasons: dict[int, ReasonCode | None] = {}

    def on_connect(c: Client, u: object, f: ConnectFlags, reason: ReasonCode, p: Properties | None) -> None:
        if not reason.is_failure:
            connected.set()

    def on_publish(c: Client, u: object, mid: int, reason: ReasonCode | None, p: Properties | None) -> None:
        reasons[mid] = reason

    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect_async(host, port)
    client.loop_start()
    try:
        if not connected.wait(timeout_s):
            raise MqttConnectError(f"could not connect to {host}:{port} within {timeout_s:.0f}s")
        info = client.publish(topic, payload, qos, retain, properties=_user_properties(user_properties))
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            raise MqttError(f"publish() to {topic!r} returned {info.rc.name}")
        try:
            info.wait_for_publish(timeout_s)
            published = info.is_published()
        except (RuntimeError, ValueError) as exc:  # paho's way to say the message was lost
            raise MqttError(f"publish to {topic!r} failed: {exc}") from None
        if not published:
            raise MqttError(f"publish to {topic!r} not acknowledged within {timeout_s:.0f}s")
        reason = reasons.get(info.mid)
        if reason is not None and reason.is_failure:
            raise MqttError(f"broker rejected the publish to {topic!r}: {reason}")
    finally:
        _release(client)
