"""One MQTT connection publishing the telemetry of its devices, in sequence order per device.

A :class:`DeviceClient` publishes from its own thread, ``seq`` 1 for all of its devices, then
``seq`` 2, and so on, through one connection, and only while the re-send rule allows
(:class:`~mqtt_kafka_sync.mqtt.resend.ResendGate`): connected, fewer than ``max_inflight`` (lowered
to the broker's Receive Maximum; paho's own limit is raised to it, so paho never queues behind our
back) messages unacknowledged, and nothing re-sent after a reconnect still unacknowledged. It
resumes its session (``clean_start=False``), so a run survives a broker restart; the duplicates
paho's re-sends may cause are expected and counted downstream, and each device's order holds.

Every ``publish()`` return code and every PUBACK/PUBCOMP reason code is checked: a failure is
counted and described in the client's :class:`~mqtt_kafka_sync.sim.result.Tally`, never dropped.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from paho.mqtt.client import Client, ConnectFlags, DisconnectFlags, MQTTMessageInfo
from paho.mqtt.enums import MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from mqtt_kafka_sync.mqtt.paho_client import (
    MqttAccess,
    authenticate,
    connect_later,
    new_client,
    release,
    session_properties,
)
from mqtt_kafka_sync.mqtt.resend import DEFAULT_RECEIVE_MAXIMUM, ResendGate
from mqtt_kafka_sync.sim.payload import make_payload
from mqtt_kafka_sync.sim.result import Tally

_log = logging.getLogger(__name__)

_WAKE_S = 0.1


@dataclass(frozen=True)
class ClientSettings:
    """What every client of one run shares."""

    host: str
    port: int
    qos: int
    payload_size: int
    user_properties: Properties | None
    max_inflight: int
    keepalive_s: int
    session_expiry_s: int
    ack_timeout_s: float
    access: MqttAccess = field(default_factory=MqttAccess)
    """Login and TLS; by default anonymous over plain TCP."""


class RunControl:
    """Shared by the clients of one run: the stop request and how long to drain after it."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.drain_until = float("inf")


class DeviceClient:
    """One paho client publishing all messages of its devices, in sequence order per device."""

    def __init__(
        self,
        client_id: str,
        devices: list[str],
        topics: list[str],
        *,
        messages: int,
        rate: float | None,
        settings: ClientSettings,
        control: RunControl,
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
        self._gate = ResendGate(settings.max_inflight)
        self._connected = threading.Event()  # set at the first CONNACK, for start()
        self.refusal = ""
        """Why the broker refused the last connection attempt, if it answered at all."""
        self._closing = False
        self._last_progress = time.monotonic()
        self.tally = Tally(client_id, devices)
        self.finished_at = 0.0
        self._started_at = 0.0
        self._thread = threading.Thread(target=self._run, name=f"sim-{client_id}", daemon=True)
        self.client = new_client(client_id)
        self.client.max_inflight_messages_set(settings.max_inflight)
        self.client.max_queued_messages_set(0)
        authenticate(self.client, client_id, settings.access)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish

    # -- connection ---------------------------------------------------------------------------

    def connect(self) -> None:
        settings = self._settings
        connect_later(
            self.client,
            settings.host,
            settings.port,
            session_expiry=settings.session_expiry_s,
            clean_start=False,
            keepalive=settings.keepalive_s,
        )
        self.client.loop_start()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    def close(self) -> None:
        self._closing = True
        # Our session holds nothing worth keeping: let the broker drop it now.
        release(self.client, session_properties(PacketTypes.DISCONNECT, 0))

    def _on_connect(
        self,
        client: Client,
        userdata: object,
        flags: ConnectFlags,
        reason: ReasonCode,
        properties: Properties | None,
    ) -> None:
        if reason.is_failure:
            self.refusal = f"broker refused the connection: {reason}"
            _log.warning("MQTT client %s: %s", self.client_id, self.refusal)
            return
        receive_maximum = getattr(properties, "ReceiveMaximum", None)
        if not isinstance(receive_maximum, int):
            receive_maximum = DEFAULT_RECEIVE_MAXIMUM
        with self._cond:
            waiting = len(self._pending)
            self._gate.connected(waiting, receive_maximum)
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
            self._gate.disconnected(len(self._pending))
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
            self.tally.count_failed(
                f"publish of {self.devices[index]} seq {seq} to {self._topics[index]}: {reason}"
            )
            return
        self.tally.count_acked(index, seq)

    def _sweep_lost_qos0(self) -> None:
        """QoS 0 messages still queued in paho when the connection broke are lost without a callback."""
        conn_lost = MQTTErrorCode.MQTT_ERR_CONN_LOST
        lost = [mid for mid, (_, _, info) in self._pending.items() if info.rc == conn_lost]
        for mid in lost:
            index, seq, _ = self._pending.pop(mid)
            self.tally.count_failed(f"QoS 0 publish of {self.devices[index]} seq {seq} lost on disconnect")
        if lost:
            self._cond.notify_all()
            self._check_resynced()

    def _check_resynced(self) -> None:
        """After a reconnect, new messages wait until paho re-sent every older one and the broker
        acked them (:class:`~mqtt_kafka_sync.mqtt.resend.ResendGate`), so each device's messages
        arrive in order. Called with ``_cond`` held."""
        if self._gate.settle(len(self._pending)):
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
            _log.exception("MQTT client %s: simulator client crashed", self.client_id)
            with self._cond:
                self.tally.count_failed("simulator client crashed (see log)")
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
            while not self._gate.allows(len(self._pending)):
                if self._control.stop.is_set():
                    return False
                if self._stalled():
                    state = "connected" if self._gate.online else "disconnected"
                    self.tally.count_failed(
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
                self.tally.count_failed(f"publish() of {device} seq {seq} to {topic} returned {info.rc.name}")
                return
            self.tally.count_sent(index, seq)
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
                self.tally.count_failed(f"publish of {self.devices[index]} seq {seq} was never acknowledged")
            self._pending.clear()
