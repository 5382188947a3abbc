"""Issue 17: an adoption that starts while the survivor's Kafka producer has nothing outstanding.

A ``KafkaSink`` with nothing outstanding has ``len()`` 0, so it was falsy, and the adopted task
(``IngestTask(..., sink=<the main task's sink>)``, built as ``sink or KafkaSink(...)``) got a
producer of its own that nobody polled: its records reached Kafka, their delivery reports never
came back, the adopted session's whole Receive Maximum window stayed unacknowledged, the adoption
never finished, and what the session held beyond the window was never read. In the two-worker
kill -9 test that happened about once in eight runs, when the adoption began between two polls of an
idle producer (its statistics event queued every second made it non-empty the rest of the time).

Here the moment is chosen: the survivor takes no traffic (the dead member's session holds it all),
and the adoption starts right after the survivor's producer was drained, so it is empty then.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mqtt_kafka_sync.config.loader import load_connector
from mqtt_kafka_sync.config.model import SourceConnectorConfig
from mqtt_kafka_sync.ingest.takeover import (
    OFFLINE,
    ONLINE,
    Member,
    membership_filter,
    membership_payload,
    membership_topic,
)
from mqtt_kafka_sync.ingest.task import IngestTask
from mqtt_kafka_sync.ingest.worker import IngestWorker
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.mqtt import packets as p
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.raw import publish_raw
from mqtt_kafka_sync.sim.verify import read_topic, verify_topic
from tests.integration.worker_process import write_source_config

pytestmark = pytest.mark.integration

WINDOW = 500
"""The survivor's Receive Maximum: the dead member's backlog is six windows."""
DEVICES, PER_DEVICE = 30, 100


def _read_packet(sock: socket.socket, reader: p.PacketReader, kind: int, timeout: float = 10.0) -> p.Packet:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for packet in reader.packets():
            if isinstance(packet, p.Ack) and packet.kind == kind:
                return packet
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        assert data, "the broker closed the connection"
        reader.feed(data)
    raise AssertionError(f"no packet of kind {kind} within {timeout}s")


@contextlib.contextmanager
def _dead_member(
    brokers: Any, group: str, client_id: str, topics: tuple[str, ...]
) -> Iterator[socket.socket]:
    """A member of ``group`` that takes messages and never acknowledges one; closing the socket with
    a reset is its kill -9 (the broker publishes its will: ``offline``)."""
    will = p.Will(membership_topic(group, client_id), membership_payload(OFFLINE, topics), qos=1, retain=True)
    sock = socket.create_connection((brokers.mqtt_host, brokers.mqtt_port), timeout=10)
    try:
        reader = p.PacketReader()
        sock.sendall(
            p.encode_connect(
                client_id,
                keepalive=60,
                clean_start=False,
                session_expiry=3600,
                receive_maximum=WINDOW,
                will=will,
            )
        )
        _read_packet(sock, reader, p.CONNACK)
        filters = [(f"$share/{group}/{t}", 1) for t in topics] + [(membership_filter(group), 0)]
        sock.sendall(p.encode_subscribe(1, filters))
        _read_packet(sock, reader, p.SUBACK)
        sock.sendall(
            p.encode_publish(
                membership_topic(group, client_id),
                membership_payload(ONLINE, topics),
                qos=1,
                retain=True,
                packet_id=2,
            )
        )
        yield sock
    finally:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()


def _session_present(brokers: Any, client_id: str) -> bool:
    """Whether the broker still holds ``client_id``'s session (connects without touching it)."""
    with socket.create_connection((brokers.mqtt_host, brokers.mqtt_port), timeout=10) as sock:
        sock.sendall(
            p.encode_connect(client_id, keepalive=10, clean_start=False, session_expiry=0, receive_maximum=10)
        )
        connack = _read_packet(sock, p.PacketReader(), p.CONNACK)
        assert isinstance(connack, p.Ack)
        sock.sendall(p.encode_disconnect(0, 0))
        return connack.session_present


def test_an_adoption_that_starts_while_the_survivors_producer_is_idle_drains_the_whole_session(
    brokers: Any, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    name, root, topic = f"race-{tag}", f"t{tag}", f"telemetry-{tag}"
    template = f"{root}/plants/{{plant}}/devices/{{device}}/telemetry"
    ensure_topics(brokers.kafka_bootstrap, [topic, f"{topic}-dlq"], partitions=6)
    path = write_source_config(
        tmp_path / "survivor.json",
        brokers,
        name=name,
        root=root,
        topic=topic,
        **{"mqtt.client.id": f"{name}-b", "mqtt.receive.maximum": WINDOW, "mqtt.takeover.delay.seconds": 1},
    )
    config = load_connector(path, {})
    assert isinstance(config, SourceConnectorConfig)
    dead_id = f"{name}-a-0"

    # The dead member's session holds the whole backlog: it was the group's only member.
    with _dead_member(brokers, name, dead_id, config.mqtt_topics):
        sent = DeviceSimulator(
            brokers.mqtt_host, brokers.mqtt_port, DEVICES, PER_DEVICE, topic_template=template, rate=5000
        ).run()
        assert sent.ok, sent.summary()

    survivor = IngestWorker(config, 0)
    started: list[IngestTask] = []
    adoption_task = survivor._adoption_task

    def adoption_task_when_idle(member: Member) -> IngestTask:
        # The race, on purpose: the survivor takes no traffic, so once its producer's queue (its
        # statistics events) is served, the adoption starts with nothing outstanding.
        survivor.task.sink.poll(0)
        assert len(survivor.task.sink) == 0
        task = adoption_task(member)
        started.append(task)
        return task

    survivor._adoption_task = adoption_task_when_idle  # type: ignore[method-assign]
    survivor.start()
    stopped = False
    try:
        assert survivor.task.subscriber.wait_subscribed(30)
        deadline = time.monotonic() + 30  # the adoption itself takes about 3 s
        while time.monotonic() < deadline and not started:
            time.sleep(0.1)
        assert started, "the survivor never adopted the dead member's session"
        task = started[0]
        # The dead member's session also held its membership subscription (a plain one, which
        # Mosquitto keeps with the session): once the adopter unsubscribed, a member coming or going
        # must not reach the adopted pipeline, where it would be a record with no route.
        assert task.subscriber._unsubscribed.wait(10), (
            f"no UNSUBACK within 10 s: {task.tracker.in_flight} messages unconfirmed, "
            f"{task.pipeline.stats.received} received, {task.tracker.acked} acknowledged"
        )
        publish_raw(
            brokers.mqtt_host,
            brokers.mqtt_port,
            membership_topic(name, f"{name}-c-0"),
            membership_payload(ONLINE, config.mqtt_topics),
            qos=0,
        )
        time.sleep(0.5)
        assert survivor._adoptions, "the adoption ended before the membership record was published"
        while time.monotonic() < deadline and survivor._adoptions:
            time.sleep(0.2)
        assert not survivor._adoptions, (
            f"the adoption did not finish: {task.tracker.in_flight} messages unconfirmed, "
            f"{task.pipeline.stats.received} received, {task.tracker.acked} acknowledged"
        )
        assert task.sink is survivor.task.sink
        report = verify_topic(
            brokers.kafka_bootstrap,
            topic,
            sent.per_device_last_seq,
            timeout_s=60,
            idle_s=5,
            topic_template=template,
        )
        print(f"\n[adoption race] {report.summary()}")
        assert report.lost == 0, report.summary()
        assert report.duplicated == 0, report.summary()  # the dead member produced nothing
        assert survivor.snapshot()["acked"] == DEVICES * PER_DEVICE
        dead_letters = read_topic(brokers.kafka_bootstrap, f"{topic}-dlq", timeout_s=10)
        assert dead_letters == [], [
            (r.headers.get("mqtt.topic"), r.headers.get("dlq.reason")) for r in dead_letters
        ]
        assert not _session_present(brokers, dead_id), "the adopted session was not ended"
        stopped = True
        assert survivor.drain(10)
    finally:
        if not stopped:
            survivor.drain(10)
