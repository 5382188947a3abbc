"""The device simulator: many devices publishing numbered telemetry over a few MQTT clients.

Devices are dealt round-robin to ``clients`` connections, each a
:class:`~mqtt_kafka_sync.sim.device_client.DeviceClient` publishing on its own thread (in sequence
order per device, by the re-send rule after a reconnect). The total ``rate`` is shared among them
by their number of devices; a stop drains what is in flight for a while. Their tallies add up to
the run's :class:`~mqtt_kafka_sync.sim.result.SimResult`.
"""

from __future__ import annotations

import time
import uuid

from mqtt_kafka_sync.errors import MqttConnectError
from mqtt_kafka_sync.mqtt.paho_client import MqttAccess, publish_properties
from mqtt_kafka_sync.sim.device_client import ClientSettings, DeviceClient, RunControl
from mqtt_kafka_sync.sim.payload import TELEMETRY_TOPIC_TEMPLATE, device_ids, device_topic
from mqtt_kafka_sync.sim.raw import publish_raw
from mqtt_kafka_sync.sim.result import SimResult


def _check_template(template: str) -> None:
    try:
        sample = template.format(plant="p01", device="d0001")
    except (KeyError, IndexError, ValueError) as exc:
        raise ValueError(
            f"topic template {template!r} may use only {{plant}} and {{device}}: {exc}"
        ) from None
    if not sample or "+" in sample or "#" in sample:
        raise ValueError(f"topic template {template!r} must give a topic without wildcards")


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
        access: MqttAccess | None = None,
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
        self._client_count = min(clients, max(1, devices))
        self._connect_timeout_s = connect_timeout_s
        self._settings = ClientSettings(
            host=mqtt_host,
            port=mqtt_port,
            qos=qos,
            payload_size=payload_size,
            user_properties=publish_properties(user_properties),
            max_inflight=max_inflight,
            keepalive_s=keepalive_s,
            session_expiry_s=session_expiry_s,
            ack_timeout_s=ack_timeout_s,
            access=access or MqttAccess(),
        )
        self._user_properties = user_properties
        self._control = RunControl()
        self._clients: list[DeviceClient] = []
        self._started_at = 0.0
        self._result: SimResult | None = None

    @property
    def expected(self) -> dict[str, int]:
        """Device id -> last seq of a complete run."""
        return dict.fromkeys(self.device_ids, self.messages_per_device)

    @property
    def sent(self) -> int:
        return sum(c.tally.sent for c in self._clients)

    @property
    def acked(self) -> int:
        return sum(c.tally.acked for c in self._clients)

    @property
    def running(self) -> bool:
        return bool(self._clients) and self._result is None

    def run(self) -> SimResult:
        """Publish every message and wait until the broker acknowledged each one."""
        self.start()
        result = self.wait()
        assert result is not None
        return result

    def start(self) -> None:
        """Connect every client (raises :class:`MqttConnectError`), then publish in the background."""
        if self._clients:
            raise RuntimeError("a DeviceSimulator runs once; make a new one")
        total = len(self.device_ids)
        for i in range(self._client_count):
            ids = self.device_ids[i :: self._client_count]
            rate = self._rate * len(ids) / total if self._rate else None
            topics = [device_topic(d, self.topic_template) for d in ids]
            self._clients.append(
                DeviceClient(
                    f"{self.client_id_prefix}-{i}",
                    ids,
                    topics,
                    messages=self.messages_per_device,
                    rate=rate,
                    settings=self._settings,
                    control=self._control,
                )
            )
        for client in self._clients:
            client.connect()
        deadline = time.monotonic() + self._connect_timeout_s
        for client in self._clients:
            if not client.wait_connected(max(0.0, deadline - time.monotonic())):
                for c in self._clients:  # first stop every reconnect loop, then wait for each
                    c.client.disconnect()
                for c in self._clients:
                    c.close()
                raise MqttConnectError(
                    f"simulator client {client.client_id} could not connect to {self.mqtt_host}:"
                    f"{self.mqtt_port} within {self._connect_timeout_s:g}s"
                    + (f": {client.refusal}" if client.refusal else "")
                )
        self._started_at = time.monotonic()
        for client in self._clients:
            client.start(self._started_at)

    def wait(self, timeout_s: float | None = None) -> SimResult | None:
        """The result once every client finished, or ``None`` if ``timeout_s`` passed first."""
        if self._result is not None:
            return self._result
        deadline = None if timeout_s is None else time.monotonic() + timeout_s
        for client in self._clients:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not client.join(left):
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
        end = max((c.finished_at for c in self._clients), default=self._started_at)
        return SimResult.of((c.tally for c in self._clients), max(0.0, end - self._started_at))
