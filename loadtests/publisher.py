"""An open-loop, paced MQTT 5 QoS 1 load generator that is not the bottleneck.

paho tops out near 7,000 QoS 1 messages/s on this kind of machine, so each generator process
speaks MQTT over a raw socket with the project's own codec, writes PUBLISH packets in batches, keeps
at most the broker's Receive Maximum unacknowledged, and paces itself against the wall clock
(open loop: a process that falls behind sends what is due, it does not slow the schedule). Several
processes share the devices; every device belongs to one process, so its sequence numbers go out
in order. Payloads are those of :func:`mqtt_kafka_sync.sim.payload.make_payload` (device, seq, send
timestamp, padding to an exact size), built from a per-device template for speed.
"""

from __future__ import annotations

import multiprocessing
import socket
import time
from dataclasses import dataclass

from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.sim.payload import device_ids, device_topic

TICK = 0.002  # seconds between sending bursts


@dataclass(frozen=True)
class LoadSpec:
    host: str
    port: int
    topic_template: str
    devices: int
    messages_per_device: int
    rate: float
    """Messages per second offered by all processes together."""
    payload_size: int = 256
    processes: int = 2
    qos: int = 1


@dataclass(frozen=True)
class LoadResult:
    sent: int
    acked: int
    elapsed_s: float
    behind_s: float
    """How far behind the schedule the slowest process ended (0 when it kept up)."""
    started_at: float = 0.0
    """Wall clock (``time.time()``) at which the processes began sending, after their start-up."""

    @property
    def rate(self) -> float:
        return self.sent / self.elapsed_s if self.elapsed_s else 0.0


def _payload_template(device_id: str, size: int) -> tuple[bytes, bytes]:
    """Prefix and suffix around ``seq,"ts":...``; the padding keeps the total at ``size`` bytes."""
    head = f'{{"device":"{device_id}","seq":'.encode()
    tail_core = ',"value":21.5'
    sample = head + b'%d,"ts":%.6f' % (10**6, 1.7e9) + tail_core.encode() + b"}"
    pad = max(0, size - len(sample) - len(',"pad":""'))
    tail = (tail_core + (f',"pad":"{"x" * pad}"' if pad else "") + "}").encode()
    return head, tail


def _run_slice(
    spec: LoadSpec, devices: list[str], start_at: float, out: multiprocessing.Queue[tuple[int, int, float]]
) -> None:
    sock = socket.create_connection((spec.host, spec.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    client_id = f"load-{devices[0]}-{len(devices)}"
    sock.sendall(
        p.encode_connect(client_id, keepalive=60, clean_start=True, session_expiry=0, receive_maximum=65535)
    )
    reader = p.PacketReader()
    window = 65535
    connack = None
    while connack is None:
        for packet in reader.feed_all(sock.recv(65536)):
            if isinstance(packet, p.Ack) and packet.kind == p.CONNACK:
                connack = packet
    receive_maximum = connack.properties.get(p.PROP_RECEIVE_MAXIMUM, 65535)
    assert isinstance(receive_maximum, int), receive_maximum  # a two-byte integer property
    window = receive_maximum
    topics = [device_topic(d, spec.topic_template).encode() for d in devices]
    templates = [_payload_template(d, spec.payload_size) for d in devices]
    total = len(devices) * spec.messages_per_device
    my_rate = spec.rate * len(devices) / spec.devices
    sent = acked = 0
    next_packet_id = 0
    sock.setblocking(False)
    while time.time() < start_at:
        time.sleep(0.001)
    t0 = time.monotonic()
    order = [(seq, i) for seq in range(1, spec.messages_per_device + 1) for i in range(len(devices))]
    while acked < total:
        due = min(total, int((time.monotonic() - t0) * my_rate) + 1)
        batch = bytearray()
        while sent < due and sent - acked < window:
            seq, i = order[sent]
            head, tail = templates[i]
            payload = head + b'%d,"ts":%.6f' % (seq, time.time()) + tail
            next_packet_id = next_packet_id % 65535 + 1
            topic = topics[i]
            body = (
                len(topic).to_bytes(2, "big") + topic + next_packet_id.to_bytes(2, "big") + b"\x00" + payload
            )
            batch += bytes((0x32,)) + p.encode_varint(len(body)) + body
            sent += 1
        if batch:
            sock.setblocking(True)
            sock.sendall(batch)
            sock.setblocking(False)
        try:
            data = sock.recv(1 << 20)
            for packet in reader.feed_all(data):
                if isinstance(packet, p.Ack) and packet.kind == p.PUBACK:
                    acked += 1
        except BlockingIOError:
            time.sleep(TICK if sent >= due or sent - acked >= window else 0)
    elapsed = time.monotonic() - t0
    behind = max(0.0, elapsed - total / my_rate)
    sock.setblocking(True)
    sock.sendall(p.encode_disconnect())
    sock.close()
    out.put((sent, acked, behind))


def generate(spec: LoadSpec) -> LoadResult:
    """Publish ``devices * messages_per_device`` messages at ``rate``; returns when all are acknowledged."""
    ids = device_ids(spec.devices)
    ctx = multiprocessing.get_context("fork")
    out: multiprocessing.Queue[tuple[int, int, float]] = ctx.Queue()
    slices = [ids[i :: spec.processes] for i in range(spec.processes) if ids[i :: spec.processes]]
    start_at = time.time() + 0.5
    procs = [ctx.Process(target=_run_slice, args=(spec, s, start_at, out), daemon=True) for s in slices]
    for proc in procs:
        proc.start()
    t0 = time.monotonic()
    results = [out.get(timeout=3600) for _ in procs]
    elapsed = time.monotonic() - t0 - 0.5
    for proc in procs:
        proc.join(10)
    return LoadResult(
        sum(r[0] for r in results),
        sum(r[1] for r in results),
        max(elapsed, 1e-9),
        max(r[2] for r in results),
        start_at,
    )
