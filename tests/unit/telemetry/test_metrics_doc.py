"""docs/metrics.md lists exactly what the exporter exposes: names, types, label sets.

The exporter is fed snapshots in which every series has a value (an ingest task with a throttle, a
relay task, one lag point), then scraped; the families parsed from its Prometheus text must match
the doc table row for row. A rename, a new metric or a new label changes both, or this fails.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import replace
from typing import Any

from mqtt_kafka_sync.config.model import ShardsConfig
from mqtt_kafka_sync.devstack.paths import repo_root
from mqtt_kafka_sync.telemetry import catalog as c
from tests.unit.telemetry.telemetry_fakes import source_config
from tests.unit.telemetry.test_telemetry import FakeSource, scrape

DOC = repo_root() / "docs" / "metrics.md"
ROW = re.compile(r"^\| `(?P<name>mqtt_kafka_sync_\w+)` \| (?P<kind>\w+) \| (?P<labels>[\w, ]+) \|")


def documented() -> dict[str, tuple[str, frozenset[str]]]:
    rows = {}
    for line in DOC.read_text().splitlines():
        if match := ROW.match(line):
            labels = frozenset(label.strip() for label in match["labels"].split(","))
            assert match["name"] not in rows, f"{match['name']} is listed twice in {DOC.name}"
            rows[match["name"]] = (match["kind"], labels)
    assert rows, f"no metric table found in {DOC}"
    return rows


class EverySeries(FakeSource):
    def __init__(self) -> None:
        super().__init__()
        shards = ShardsConfig(("plants/p0/#",), ("feed-plants-p0-0",), "coordination", "owners")
        self.tasks.append(self._task(replace(source_config(throttled=True), shards=shards)))
        for snap in self.tasks:
            for i, value in enumerate(snap.values):
                if math.isnan(value):
                    snap.values[i] = 1.0


def exposed() -> dict[str, tuple[str, frozenset[str]]]:
    found = {}
    for family in scrape(EverySeries()).values():
        name = family.name + "_total" if family.type == "counter" else family.name
        labels: set[str] = set()
        for sample in family.samples:
            labels |= set(sample.labels) - {"le"}
        found[name] = (family.type, frozenset(labels))
    return found


def test_the_doc_table_is_what_the_exporter_exposes() -> None:
    doc, real = documented(), exposed()
    assert sorted(set(real) - set(doc)) == [], "exposed but not in docs/metrics.md"
    assert sorted(set(doc) - set(real)) == [], "in docs/metrics.md but not exposed"
    wrong = {name: (doc[name], real[name]) for name in doc if doc[name] != real[name]}
    assert wrong == {}, "type or labels differ (doc, exposed)"


def test_the_catalog_names_what_prometheus_shows() -> None:
    assert {m.prometheus_name for m in c.METRICS} == set(documented())
    for metric in c.METRICS:
        assert documented()[metric.prometheus_name] == (metric.kind, frozenset(metric.labels))


def _names_in(expr: str) -> set[str]:
    return set(re.findall(r"\bmqtt_kafka_sync_\w+", expr))


def test_dashboards_and_alerts_use_documented_metrics_only() -> None:
    known: set[str] = set()
    for name, (kind, _) in documented().items():
        known.add(name)
        if kind == "histogram":
            known |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
    used: dict[str, Any] = {}
    for path in (repo_root() / "compose" / "grafana" / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                used.update(dict.fromkeys(_names_in(target["expr"]), f"{path.name}: {panel['title']}"))
    alerts = repo_root() / "compose" / "prometheus" / "alerts.yml"
    used.update(dict.fromkeys(_names_in(alerts.read_text()), alerts.name))
    assert {n: where for n, where in used.items() if n not in known} == {}
