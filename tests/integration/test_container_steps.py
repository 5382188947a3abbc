"""The container's steps without Docker (CI has none): compose/Dockerfile's build stage is run as
written (its WORKDIR, COPY, ENV and RUN lines, parsed by tests/unit/deploy/dockerfile.py) into a
fresh virtualenv, then the final stage's entrypoint runs as its non-root user (setpriv to 65532)
with its environment, a read-only working directory and one writable directory standing for the
chart's emptyDir: `validate`, then `run` against the test brokers while 300 messages are published,
and every one of them is in Kafka. Nothing is written outside the writable directory.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mqtt_kafka_sync.kafka.admin import ensure_topics
from mqtt_kafka_sync.sim.devices import DeviceSimulator
from mqtt_kafka_sync.sim.verify import verify_topic
from tests.integration.worker_process import write_source_config
from tests.unit.deploy.dockerfile import Stage, stages

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEVICES, PER_DEVICE = 10, 30
BASE_PATH = "/usr/local/bin:/usr/bin:/bin"


class Image:
    """The image's file system as far as the test needs it: each absolute path the Dockerfile names
    (/opt/mqtt-kafka-sync, /src, /tmp) stands for a directory under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, image_path: str) -> Path:
        return self.root / image_path.strip("/").replace("/", "_")

    def map(self, value: str) -> str:
        for image_path in ("/opt/mqtt-kafka-sync", "/src", "/tmp"):
            if value == image_path or value.startswith(image_path + "/"):
                return str(self.path(image_path)) + value[len(image_path) :]
        return value

    def environment(self, stage: Stage, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        for key, value in stage.env().items():
            env[key] = ":".join(self.map(part) for part in value.replace("$PATH", env["PATH"]).split(":"))
        return env


def _user() -> tuple[int, int]:
    user, _, group = stages()[-1].all("USER")[-1].partition(":")
    return int(user), int(group or user)


def _as_image_user(argv: list[str]) -> list[str]:
    uid, gid = _user()
    return ["setpriv", f"--reuid={uid}", f"--regid={gid}", "--clear-groups", *argv]


def _interpreter() -> str:
    """A Python >= 3.11 the image's user may run (a pyenv build under /root is not one)."""
    candidates = [os.path.realpath(p) for p in ("/usr/bin/python3", shutil.which("python3.11")) if p]
    for candidate in candidates:
        # The interpreter that answers must be the candidate itself: setpriv, refused the candidate
        # (a directory the user cannot enter), was seen to run another python3.11 instead.
        check = f"import os, sys, venv, ensurepip; assert os.path.realpath(sys.executable) == {candidate!r}"
        probe = [candidate, "-c", f"{check}; assert sys.version_info >= (3, 11)"]
        if subprocess.run(_as_image_user(probe), capture_output=True, check=False).returncode == 0:
            return candidate
    raise AssertionError(
        f"no Python >= 3.11 with venv that user {_user()[0]} can run among {candidates}: install Debian's "
        "python3-venv (scripts/install-system-deps.sh does)"
    )


def _build(image: Image, python: str) -> None:
    """The build stage, instruction by instruction, as root (as `docker build` runs it)."""
    shim = image.root / "shim"
    shim.mkdir()
    (shim / "python").symlink_to(python)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PIP_", "PYTHON", "VIRTUAL_ENV"))}
    env = {**clean, "PATH": f"{shim}:{BASE_PATH}"}
    build = stages()[0]
    cwd = image.root
    for instruction, arg in build.instructions:
        if instruction == "WORKDIR":
            cwd = Path(image.map(arg))
            cwd.mkdir(parents=True, exist_ok=True)
        elif instruction == "ENV":
            env = image.environment(Stage(build.name, build.base, [(instruction, arg)]), env)
        elif instruction == "COPY":
            *sources, target = arg.split()
            for source in sources:
                destination = cwd / target / Path(source).name if target.endswith("/") else cwd / target
                if (REPO / source).is_dir():
                    shutil.copytree(REPO / source, destination, ignore=shutil.ignore_patterns("__pycache__"))
                else:
                    shutil.copy2(REPO / source, destination)
        elif instruction == "RUN":
            done = subprocess.run(
                ["/bin/sh", "-c", arg], check=False, cwd=cwd, env=env, capture_output=True, text=True
            )
            assert done.returncode == 0, f"RUN {arg}\nfailed ({done.returncode}):\n{done.stdout}{done.stderr}"
        else:
            raise AssertionError(f"the test does not know how to run {instruction} {arg}: teach it")


def _tree(path: Path) -> dict[str, float]:
    return {str(p.relative_to(path)): p.stat().st_mtime for p in path.rglob("*")}


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    root = Path(tempfile.mkdtemp(prefix="mks-image-"))
    root.chmod(0o755)  # the image's user must reach the virtualenv and the config below
    try:
        image = Image(root)
        started = time.monotonic()
        _build(image, _interpreter())
        print(f"\n[container steps] build stage ran in {time.monotonic() - started:.1f} s")
        yield image
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_the_image_validates_and_ingests_as_its_user_with_a_read_only_working_directory(
    image: Image, brokers: Any
) -> None:
    uid, gid = _user()
    final = stages()[-1]
    env = image.environment(final, {"PATH": BASE_PATH, "LANG": "C.UTF-8"})
    entrypoint = final.exec_form("ENTRYPOINT")
    writable = image.path("/tmp")  # the chart's emptyDir
    writable.mkdir(exist_ok=True)
    os.chown(writable, uid, gid)
    readonly = image.root / "readonly"  # root's, mode 0555: the image's user cannot write here
    readonly.mkdir(mode=0o555)
    config_dir = image.root / "connectors"
    config_dir.mkdir(mode=0o755)

    tag = uuid.uuid4().hex[:8]
    topic, root_topic = f"container-{tag}", f"c{tag}"
    ensure_topics(brokers.kafka_bootstrap, [topic, f"{topic}-dlq"], partitions=3)
    config = write_source_config(
        config_dir / "connector.json", brokers, name=f"container-{tag}", root=root_topic, topic=topic
    )
    config.chmod(0o644)
    venv_before = _tree(image.path("/opt/mqtt-kafka-sync"))

    def command(*args: str) -> list[str]:
        return _as_image_user([*entrypoint, *args])

    validated = subprocess.run(
        command("validate", str(config)),
        check=False,
        cwd=readonly,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert validated.returncode == 0, validated.stdout + validated.stderr
    assert validated.stdout.strip() == "1 file(s) OK"

    status = writable / "status.json"
    log = writable.parent / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            command(
                "run",
                str(config),
                "--metrics-port",
                "0",
                "--status-file",
                str(status),
                "--drain-timeout",
                "20",
            ),
            cwd=readonly,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait_subscribed(worker, status, log)
        template = f"{root_topic}/plants/{{plant}}/devices/{{device}}/telemetry"
        result = DeviceSimulator(
            brokers.mqtt_host, brokers.mqtt_port, DEVICES, PER_DEVICE, topic_template=template
        ).run()
        assert result.ok, result.summary()
        report = verify_topic(
            brokers.kafka_bootstrap,
            topic,
            result.per_device_last_seq,
            timeout_s=60,
            idle_s=10,
            topic_template=template,
        )
        print(f"\n[container steps] {report.summary()}")
        assert report.lost == 0 and report.delivered >= DEVICES * PER_DEVICE, report.summary()
        worker.terminate()
        assert worker.wait(60) == 0, log.read_text()
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait(10)
    assert json.loads(status.read_text())["totals"]["acked"] >= DEVICES * PER_DEVICE
    assert _tree(image.path("/opt/mqtt-kafka-sync")) == venv_before, "the process wrote into its virtualenv"
    assert list(readonly.iterdir()) == []
    written = sorted(p.name for p in writable.iterdir())
    assert written == ["status.json"], f"unexpected files in the writable directory: {written}"
    assert stat.S_IMODE(readonly.stat().st_mode) == 0o555


def _wait_subscribed(worker: subprocess.Popen[bytes], status: Path, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        code = worker.poll()
        assert code is None, f"worker exited early ({code}):\n{log.read_text()}"
        try:
            tasks = json.loads(status.read_text()).get("tasks", [])
        except (FileNotFoundError, ValueError):
            tasks = []
        if tasks and all(t["subscribed"] for t in tasks):
            return
        time.sleep(0.2)
    raise AssertionError(f"worker not subscribed after {timeout} s:\n{log.read_text()}")
