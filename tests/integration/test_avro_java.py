"""Java reads what the avro value format writes: Apache Avro's BinaryMessageDecoder, from Maven Central.

The values come from the real encoder (no brokers needed); ``java/ReadSingleObject.java`` is the
docs' Java example. It finds each value's writer schema by the fingerprint in the single-object
header and resolves it to the reader schema, in both directions of the telemetry evolution.
Needs a JDK and Maven (as the local Kafka does); fails loudly without them.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from mqtt_kafka_sync.codec.schema import load_schema_file
from mqtt_kafka_sync.config.model import AvroValueConfig, RouteConfig
from mqtt_kafka_sync.ingest.routes import IngestRoutes
from tests.avro_samples import SAMPLES, SCHEMAS, expected_record

pytestmark = pytest.mark.integration

JAVA_DIR = Path(__file__).resolve().parent / "java"
TOPIC = "plants/p01/devices/d0001/telemetry"
DEVICE = "p01.d0001"


@pytest.fixture(scope="module")
def java_reader(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command line that runs ReadSingleObject, compiled against Avro's jars."""
    for tool in ("java", "javac", "mvn"):
        if shutil.which(tool) is None:
            pytest.fail(f"`{tool}` not found: install a JDK and Maven (make bootstrap does)", pytrace=False)
    work = tmp_path_factory.mktemp("java")
    libs, classes = work / "libs", work / "classes"
    copy = ["mvn", "-q", "-B", "-f", str(JAVA_DIR / "pom.xml"), "dependency:copy-dependencies"]
    _run([*copy, f"-DoutputDirectory={libs}"])
    _run(["javac", "-cp", f"{libs}/*", "-d", str(classes), str(JAVA_DIR / "ReadSingleObject.java")])
    return ["java", "-cp", f"{libs}/*:{classes}", "ReadSingleObject"]


def _run(argv: list[str]) -> str:
    done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, f"{' '.join(argv)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


def _write_values(tmp_path: Path, schema_file: str) -> list[Path]:
    schema = load_schema_file(SCHEMAS / schema_file)
    value = AvroValueConfig(schema, None, (("device", "{plant}.{device}"),))
    route = RouteConfig("r", "plants/{plant}/devices/{device}/telemetry", "t", None, "avro", value)
    routes = IngestRoutes([route])
    match = routes.route(TOPIC)
    files = []
    for index, sample in enumerate(SAMPLES[schema_file]):
        path = tmp_path / f"{schema_file}.{index}.bin"
        path.write_bytes(routes.encode(match, json.dumps(sample).encode(), TOPIC))
        files.append(path)
    return files


def _read(java_reader: list[str], reader: str, writers: list[str], files: list[Path]) -> list[Any]:
    argv = [*java_reader, str(SCHEMAS / reader), *(str(SCHEMAS / w) for w in writers), "--", *map(str, files)]
    return [json.loads(line) for line in _run(argv).splitlines()]


@pytest.mark.parametrize("schema_file", sorted(SAMPLES))
def test_java_reads_every_schema(java_reader: list[str], tmp_path: Path, schema_file: str) -> None:
    records = _read(java_reader, schema_file, [], _write_values(tmp_path, schema_file))
    assert records == [expected_record(schema_file, s, DEVICE) for s in SAMPLES[schema_file]]


def test_java_reads_v1_records_as_v2_and_v2_records_as_v1(java_reader: list[str], tmp_path: Path) -> None:
    v1_files = _write_values(tmp_path, "telemetry.v1.avsc")
    as_v2 = _read(java_reader, "telemetry.v2.avsc", ["telemetry.v1.avsc"], v1_files)
    assert as_v2 == [
        {**s, "device": DEVICE, "unit": None, "quality": "good"} for s in SAMPLES["telemetry.v1.avsc"]
    ]
    v2_files = _write_values(tmp_path, "telemetry.v2.avsc")
    as_v1 = _read(java_reader, "telemetry.v1.avsc", ["telemetry.v2.avsc"], v2_files)
    v1_fields = ("seq", "ts", "value")
    assert as_v1 == [{"device": DEVICE, **{k: s[k] for k in v1_fields}} for s in SAMPLES["telemetry.v2.avsc"]]
