"""The load harness, run tiny: it must count every message through (0 lost), in order per device (the
relay scenario). No speed is asserted."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from loadtests.publisher import LoadSpec
from loadtests.relay_load import relay_rows
from loadtests.run import Brokers, measure

pytestmark = pytest.mark.integration


def test_smoke_scenario_loses_nothing(brokers: Any, tmp_path: Path) -> None:
    b = Brokers(brokers.kafka_bootstrap, brokers.mqtt_uri, brokers.mqtt_host, brokers.mqtt_port)
    spec = LoadSpec(
        b.mqtt_host,
        b.mqtt_port,
        "smoke/plants/{plant}/devices/{device}/telemetry",
        devices=100,
        messages_per_device=20,
        rate=2000,
        processes=2,
    )
    row = measure(b, "smoke", "ci", spec, tmp_path)
    print(
        f"\n[load smoke] baseline {row.baseline_rate:,.0f}/s bridge {row.bridge_rate:,.0f}/s lost {row.lost}"
        f" dup {row.duplicated} p99 {row.p99_ms:.1f} ms"
    )
    assert row.messages == 2000
    assert row.lost == 0 and row.out_of_order == 0
    assert row.baseline_rate > 0 and row.bridge_rate > 0


@pytest.mark.parametrize("qos", [1, 2])
def test_relay_scenario_loses_nothing(brokers: Any, tmp_path: Path, qos: int) -> None:
    """The relay scenario, tiny: every command through ``run`` to ``mosquitto_sub``, each device's in
    order, and the ``mosquitto_pub`` baseline beside it; no speed is asserted."""
    b = Brokers(brokers.kafka_bootstrap, brokers.mqtt_uri, brokers.mqtt_host, brokers.mqtt_port)
    (row,) = relay_rows(b, tmp_path, messages=2000, qos=qos, rate=0)
    relay, base = row.extra["relay"], row.extra["baseline"]
    assert row.messages == 2000
    assert relay["received"] >= 2000 and relay["lost"] == 0 and relay["foreign"] == 0
    assert relay["out_of_order"] == 0
    assert relay["acked_all"] and relay["exit_code"] == 0
    assert base["lost"] == 0 and base["out_of_order"] == 0
    assert row.baseline_rate > 0 and row.bridge_rate > 0 and row.bridge_us_per_msg > 0
