"""Memory against long topics: 6,000 distinct topics of 60 KB through one worker, task RSS printed.

    python -m loadtests.long_topics                       # 6,000 x 60 KB, default cache (16 MiB)
    python -m loadtests.long_topics --cache-mb 1 --topics 2000

Every topic is routed (``mqtt.topic.max.length=65535``) and rendered into the record key
(``{topic}``), so each cache entry holds about 120 KB: the routing cache, bounded by bytes
(``mqtt.topic.cache.max.bytes``), is what keeps the task's memory flat. Bounded by entries, as it was,
the same run held ~740 MiB. Prints the task's peak RSS (VmHWM) and checks every message arrived.
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from loadtests.run import brokers, peak_rss_mb, rss_mb
from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.verify import read_topic
from tests.integration.worker_process import WorkerProcess, write_source_config


def publish(host: str, port: int, topics: list[str], payload: bytes, inflight: int = 200) -> float:
    """Publish one QoS 1 message to each topic; the seconds until every PUBACK came."""
    slots = threading.BoundedSemaphore(inflight)
    client = mqtt.Client(
        CallbackAPIVersion.VERSION2, client_id=f"lt-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    client.max_inflight_messages_set(inflight)
    client.on_publish = lambda *args: slots.release()
    client.connect(host, port)
    client.loop_start()
    start = time.monotonic()
    try:
        for topic in topics:
            if not slots.acquire(timeout=60):
                raise TimeoutError("PUBACKs stopped coming")
            client.publish(topic, payload, qos=1)
        for _ in range(inflight):  # every slot back: every PUBACK came
            if not slots.acquire(timeout=60):
                raise TimeoutError("PUBACKs stopped coming")
    finally:
        client.loop_stop()
        client.disconnect()
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--topics", type=int, default=6_000)
    parser.add_argument("--topic-bytes", type=int, default=60_000)
    parser.add_argument("--cache-mb", type=float, default=16.0, help="mqtt.topic.cache.max.bytes in MiB")
    parser.add_argument("--bootstrap")
    parser.add_argument("--mqtt-uri")
    args = parser.parse_args()
    with brokers(args) as b:
        tag = uuid.uuid4().hex[:8]
        workdir = Path(tempfile.mkdtemp(prefix="long-topics-"))
        kafka_topic = f"long-{tag}"
        ensure_topics(b.kafka_bootstrap, [kafka_topic, f"{kafka_topic}-dlq"], partitions=6)
        config = write_source_config(
            workdir / "c.json",
            b,
            name=f"long-{tag}",
            root=f"lt{tag}",
            topic=kafka_topic,
            **{
                "routes.telemetry.mqtt.topic": f"lt{tag}/{{site}}/#",
                "routes.telemetry.kafka.key": "{topic}",
                "routes.telemetry.value.format": "bytes",
                "mqtt.topic.max.length": "65535",
                "mqtt.topic.cache.max.bytes": str(int(args.cache_mb * 2**20)),
            },
        )
        worker = WorkerProcess(config, workdir, "long").start()
        try:
            worker.wait_subscribed()
            pids = worker.task_pids()
            before = rss_mb(pids)
            pad = "x" * (args.topic_bytes - len(f"lt{tag}/s000000/"))
            topics = [f"lt{tag}/s{i:06d}/{pad}" for i in range(args.topics)]
            took = publish(b.mqtt_host, b.mqtt_port, topics, b"v" * 64)
            deadline = time.monotonic() + 300
            while worker.totals().get("acked", 0) < args.topics and time.monotonic() < deadline:
                time.sleep(0.5)
            peak = peak_rss_mb(pids)
            after = rss_mb(pids)
            keys = {r.key for r in read_topic(b.kafka_bootstrap, kafka_topic, timeout_s=60)}
            acked = worker.totals().get("acked", 0)
            print(
                f"topics={args.topics} topic_bytes={args.topic_bytes} cache_mb={args.cache_mb:g} "
                f"published_in_s={took:.1f} acked={acked} distinct_keys={len(keys)} "
                f"task_rss_mb start={before:.1f} peak={peak:.1f} end={after:.1f}"
            )
            lost = args.topics - len(keys)
            assert lost == 0, f"{lost} topics missing from Kafka"
        finally:
            worker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
