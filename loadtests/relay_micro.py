"""The command relay's CPU per command, in process: no broker, no socket, no second thread.

    python -m loadtests.relay_micro                  # 100,000 commands, QoS 1, best of 5
    python -m loadtests.relay_micro --qos 2 --full   # QoS 2; expiry, response topic, two headers
    python -m loadtests.relay_micro --profile 20     # one run under cProfile, the top 20 lines

One :class:`~mqtt_kafka_sync.relay.task.RelayTask` (its router, window, offset tracker and the real
:class:`~mqtt_kafka_sync.mqtt.publisher.MqttPublisher` encoding into its session) is stepped over
``--commands`` records of 6 partitions and 1,000 devices (``confluent_kafka.Message``, built before
the clock starts), and after each step this thread plays the publisher's network thread without a
socket: it takes the writes (:meth:`Outflight.take_writes`), answers every publish on the wire with
a PUBACK (QoS 1) or PUBREC then PUBCOMP (QoS 2), parsed by :func:`read_acks` and applied by
:meth:`Outflight.answered`, and tells the relay as the network loop does (one ``Acks`` event per
quarter window). The figure is ``time.process_time()`` per command, best of ``--runs``: the CPU the
relay thread and the network thread's read-and-tell path spend per command, without the socket
calls, Kafka's fetch and the GIL hand-overs of a real run (``loadtests/relay_bench.py`` has those).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import queue
import time
from collections.abc import Callable
from typing import Any

from confluent_kafka import TIMESTAMP_CREATE_TIME, Message

from mqtt_kafka_sync.config.model import RELAY_MQTT_MAX_INFLIGHT, RelayRouteConfig
from mqtt_kafka_sync.kafka.dead_letter import DeadLetters
from mqtt_kafka_sync.mqtt.events import Connected
from mqtt_kafka_sync.mqtt.outflight import read_acks
from mqtt_kafka_sync.mqtt.outgoing import _Loop
from mqtt_kafka_sync.mqtt.publisher import MqttPublisher, PublisherSettings
from mqtt_kafka_sync.relay.offsets import TopicPartition
from mqtt_kafka_sync.relay.routes import CommandRouter
from mqtt_kafka_sync.relay.task import RelayTask

TOPIC = "device-commands"
PARTITIONS = 6
DEVICES = 1000
NOW_MS = 1_800_000_000_000
Callback = Callable[[set[TopicPartition]], None]


class _Consumer:
    """Hands out the prepared records, ``limit`` at a time; stores are kept, never committed."""

    def __init__(self, assigned: Callback, revoked: Callback, lost: Callback) -> None:
        self.on_assigned = assigned
        self.records: list[Message] = []
        self.at = 0
        self.assigned: set[TopicPartition] = set()
        self.paused: set[TopicPartition] = set()
        self.stored: dict[TopicPartition, int] = {}
        self.kafka_up, self.errors, self.kafka_refusal = True, 0, None
        self.kafka_refusals: dict[str, int] = {}

    def subscribe(self) -> None:
        self.assigned = {(TOPIC, n) for n in range(PARTITIONS)}
        self.on_assigned(set(self.assigned))

    def consume(self, limit: int, timeout: float) -> list[Message]:
        taken = self.records[self.at : self.at + limit]
        self.at += len(taken)
        return taken

    def member_id(self) -> str | None:
        return "member"

    def pause(self, tps: set[TopicPartition]) -> None:
        self.paused |= tps

    def resume(self, tps: set[TopicPartition]) -> None:
        self.paused -= tps

    def store(self, tp: TopicPartition, offset: int) -> None:
        self.stored[tp] = offset

    def flush_stores(self) -> None:
        pass

    def close(self) -> None:
        pass


class _NoSink:
    """The dead-letter producer: no record of these runs is dead-lettered."""

    errors = 0

    def produce(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("a command was dead-lettered")

    def __len__(self) -> int:
        return 0

    def poll(self, timeout: float = 0.0) -> int:
        return 0

    def close(self, timeout: float = 5.0) -> int:
        return 0


def route(qos: int, full: bool) -> RelayRouteConfig:
    extra: dict[str, Any] = {}
    if full:
        extra = {
            "message_expiry_seconds": 300,
            "response_topic": "plants/{plant}/devices/{device}/commands/response",
            "correlation_header": "correlation-id",
        }
    return RelayRouteConfig(
        name="cmd",
        kafka_topic=TOPIC,
        kafka_key="{plant}.{device}",
        mqtt_topic="plants/{plant}/devices/{device}/commands",
        mqtt_qos=qos,
        **extra,
    )


def records(count: int, full: bool) -> list[Message]:
    """``count`` records, round-robin over the partitions, devices over the keys."""
    out, offsets = [], [0] * PARTITIONS
    for n in range(count):
        device = n % DEVICES
        partition = device % PARTITIONS
        headers: list[tuple[str, str | bytes | None]] | None = None
        if full:
            headers = [("correlation-id", b"c-%d" % n), ("source", b"planner")]
        out.append(
            Message(
                topic=TOPIC,
                partition=partition,
                offset=offsets[partition],
                key=b"p01.d%04d" % device,
                value=b'{"device":"d%04d","seq":%d,"set":{"rate":5}}' % (device, n),
                headers=headers,
                timestamp=(TIMESTAMP_CREATE_TIME, NOW_MS - 1000),
            )
        )
        offsets[partition] += 1
    return out


_PUBACK = [b"\x40\x02" + mid.to_bytes(2, "big") for mid in range(65536)]
_PUBREC = [b"\x50\x02" + mid.to_bytes(2, "big") for mid in range(65536)]
_PUBCOMP = [b"\x70\x02" + mid.to_bytes(2, "big") for mid in range(65536)]


def run(count: int, qos: int, full: bool, prepared: list[Message]) -> tuple[float, int]:
    """CPU seconds to relay ``prepared`` and the commands delivered."""
    events: queue.SimpleQueue[object] = queue.SimpleQueue()
    publisher = MqttPublisher(PublisherSettings("127.0.0.1", 1, "micro"), events, hold_acks=True)
    link = publisher._link
    consumers: list[_Consumer] = []

    def factory(assigned: Callback, revoked: Callback, lost: Callback) -> _Consumer:
        consumers.append(_Consumer(assigned, revoked, lost))
        return consumers[0]

    task = RelayTask(
        "micro",
        CommandRouter([route(qos, full)]),
        consumer=factory,
        publisher=publisher,
        dead_letters=DeadLetters(_NoSink(), "dlq", "micro", events),  # type: ignore[arg-type]
        events=events,
        max_inflight=RELAY_MQTT_MAX_INFLIGHT,
        clock=lambda: NOW_MS / 1000,
    )
    consumer = consumers[0]
    consumer.records = prepared
    task.start = lambda: None  # type: ignore[method-assign]  # no network thread
    consumer.subscribe()
    flight = link.flight
    flight.reconnected(100)
    link.online = True
    events.put(Connected(False, 100, 2, True, None))
    loop = _Loop(link, None, None)  # type: ignore[arg-type]  # tell() only: no socket, no keepalive
    started = time.process_time()
    while task.tracker.finished < count:
        task.step()
        link.wakeup.drain()
        with flight.lock:
            flight.take_writes()
        on_wire = list(task._window.in_flight)
        flight.out.clear()
        answers = _PUBACK if qos == 1 else _PUBREC
        acks: list[tuple[int, int, int]] = []
        read_acks(b"".join([answers[mid] for mid in on_wire]), acks)
        ended = flight.answered(acks)
        if qos == 2:  # the PUBRELs written, then the PUBCOMPs
            flight.out.clear()
            acks = []
            read_acks(b"".join([_PUBCOMP[mid] for mid in on_wire]), acks)
            ended = flight.answered(acks)
        loop.tell(ended)
        loop.tell_acked()
    spent = time.process_time() - started
    link.wakeup.close()
    return spent, task.stats.delivered


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--commands", type=int, default=100_000)
    parser.add_argument("--qos", type=int, choices=(1, 2), default=1)
    parser.add_argument("--full", action="store_true", help="expiry, response topic, correlation header")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--profile", type=int, default=0, help="profile one run, print this many lines")
    args = parser.parse_args()
    prepared = records(args.commands, args.full)
    gc.freeze()
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run(args.commands, args.qos, args.full, prepared)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.profile)
        return
    best = float("inf")
    for _ in range(args.runs):
        spent, delivered = run(args.commands, args.qos, args.full, prepared)
        if delivered != args.commands:
            raise SystemExit(f"delivered {delivered} of {args.commands}")
        best = min(best, spent)
    shape = "full" if args.full else "plain"
    print(f"qos {args.qos} {shape}: {best / args.commands * 1e6:.2f} us per command (best of {args.runs})")


if __name__ == "__main__":
    main()
