"""The ``kafka-latency`` scenario of ``loadtests/run.py``: the latency Kafka itself sets, no MQTT, no bridge.

    python -m loadtests.run kafka-latency --rate 10000 --messages 600000 --warmup 10
    python -m loadtests.run kafka-latency --producer linger.ms=2

The bridge's own producer settings (``kafka/producer.producer_config``: idempotent, ``acks=all``,
``linger.ms`` 5, ``batch.size``, and any ``--producer`` overrides) produce the latency scenario's
records (256-byte simulator payloads, keys of 1,000 devices, round-robin) at the same rate into a
fresh 6-partition ``LogAppendTime`` topic, from one thread that produces what is due and polls
between. Latency is the broker's append time (the delivery report's timestamp) minus the wall clock
just before ``produce()``: the latency scenario's measure without the generator, Mosquitto and the
bridge, so the latency scenario cannot go below it on the same machine. The first ``--warmup``
seconds of sends are offered the same way and left out.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import TIMESTAMP_LOG_APPEND_TIME, KafkaError, Message, Producer

from loadtests.run import Brokers, Row, cpu_seconds, machine_cpu_seconds, print_budget
from mqtt_kafka_sync.config.model import KafkaConnection
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.kafka.producer import producer_config
from mqtt_kafka_sync.sim.payload import device_ids, make_payload
from mqtt_kafka_sync.sim.verify_analysis import Latency

POLL_S = 0.001
"""The producing thread's wait for delivery reports between sends (librdkafka takes whole milliseconds:
less would be 0, a busy loop taking a core from Kafka)."""


class _Reports:
    """Delivery reports of the measured sends: latencies in ms, failures counted."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        self.failed = 0

    def report(self, sent_ms: float) -> Callable[[KafkaError | None, Message], None]:
        def delivered(err: KafkaError | None, msg: Message) -> None:
            kind, appended_ms = msg.timestamp()
            if err is not None or kind != TIMESTAMP_LOG_APPEND_TIME:
                self.failed += 1
                return
            self.latencies_ms.append(appended_ms - sent_ms)

        return delivered


def kafka_latency_row(
    b: Brokers, *, rate: float, messages: int, warmup_s: float, overrides: dict[str, str]
) -> Row:
    """Produce ``warmup_s`` of unmeasured sends, then ``messages`` measured ones, at ``rate``/s."""
    topic = f"kafka-alone-{int(time.time())}"
    ensure_topics(
        b.kafka_bootstrap, [topic], partitions=6, config={"message.timestamp.type": "LogAppendTime"}
    )
    ours = {key.removeprefix("kafka.producer."): value for key, value in overrides.items()}
    producer = Producer(
        producer_config(KafkaConnection(b.kafka_bootstrap, producer_overrides=ours), "kafka-alone")
    )
    devices = [d.encode() for d in device_ids(1000)]
    warm = round(rate * warmup_s)
    total = warm + messages
    reports = _Reports()
    broker = [b.kafka_pid] if b.kafka_pid else []
    began, sent = time.monotonic(), 0
    machine0 = kafka0 = 0.0
    while sent < total:
        due = min(total, int((time.monotonic() - began) * rate) + 1)
        while sent < due:
            if sent == warm:
                machine0, kafka0 = machine_cpu_seconds(), cpu_seconds(broker)
            device = devices[sent % len(devices)]
            value = make_payload(device.decode(), sent // len(devices) + 1, 256)
            on_delivery = reports.report(time.time() * 1000.0) if sent >= warm else None
            producer.produce(topic, value, device, on_delivery=on_delivery)
            sent += 1
        producer.poll(POLL_S)
    left = producer.flush(60)
    elapsed = time.monotonic() - began - warmup_s
    parts = {"kafka": cpu_seconds(broker) - kafka0} if broker else {}
    print_budget("kafka alone", messages, machine_cpu_seconds() - machine0, parts)
    lat = Latency.of(reports.latencies_ms)
    if lat is None or left or reports.failed:
        raise SystemExit(f"kafka-latency: {left} records unsent, {reports.failed} failed, {lat} measured")
    return Row(
        "kafka-latency",
        f"{rate:,.0f}/s offered",
        rate,
        messages,
        bridge_rate=messages / elapsed,
        lost=messages - lat.count,
        p50_ms=lat.p50_ms,
        p99_ms=lat.p99_ms,
        p999_ms=lat.p999_ms,
        kafka_us_per_msg=1e6 * parts.get("kafka", 0.0) / messages,
    )
