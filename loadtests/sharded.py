"""One worker, shared vs sharded mode: what owning sessions by shard costs in throughput.

    python -m loadtests.run sharded [--messages N] [--rate R]

Three runs of the same load (1,000 devices in 10 plants, QoS 1, 256 B), each on a fresh topic root:
shared mode with one task; sharded mode with one shard (the whole tree: the cost of the mode
alone); sharded mode with one shard per plant (ten sessions and producers in one task process).
Prints each sharded run's throughput as a share of the shared run's (the issue's target: 90 %),
and its task CPU per message against the shared run's: on a shared, noisy machine the rates swing
from run to run, and the ratios within one run are the figures to compare.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

from loadtests.publisher import LoadSpec
from loadtests.run import Brokers, Row, measure
from mqtt_kafka_sync.sim.payload import DEVICES_PER_PLANT

TARGET = 0.9


def sharded_rows(b: Brokers, workdir: Path, spec: Callable[[], LoadSpec]) -> list[Row]:
    shared_spec = spec()
    rows = [measure(b, "sharded", "shared, 1 task", shared_spec, workdir, with_baseline=False)]
    one, per_plant = spec(), spec()
    plants = math.ceil(per_plant.devices / DEVICES_PER_PLANT)
    for label, load, shards in (
        ("sharded, 1 shard", one, [f"{_root(one)}/#"]),
        (
            f"sharded, {plants} shards",
            per_plant,
            [f"{_root(per_plant)}/plants/p{i:02d}/#" for i in range(1, plants + 1)],
        ),
    ):
        extra = {"mqtt.topics": "", "mqtt.subscription": "sharded", "mqtt.shards": ",".join(shards)}
        rows.append(measure(b, "sharded", label, load, workdir, with_baseline=False, extra=extra))
    shared, shared_cpu = rows[0].bridge_rate, rows[0].bridge_us_per_msg
    for row in rows[1:]:
        share = row.bridge_rate / shared if shared else 0.0
        verdict = "meets" if share >= TARGET else "below"
        cpu = row.bridge_us_per_msg / shared_cpu if shared_cpu else 0.0
        print(
            f"{row.label}: {row.bridge_rate:,.0f}/s = {share:.0%} of shared ({verdict} {TARGET:.0%}); "
            f"task CPU per message {cpu:.2f}x shared's"
        )
    return rows


def _root(load: LoadSpec) -> str:
    return load.topic_template.split("/", 1)[0]
