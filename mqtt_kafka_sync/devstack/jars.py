"""The Kafka broker's jars: resolved by Maven from ``brokers/kafka/pom.xml`` into a libs dir, once.

Each version of the pom gets its own subdirectory, ``<libs dir>/<pom digest>/``, so editing the pom
(a Kafka upgrade) fetches again without pulling jars from under a broker that still runs the old
ones. A file lock keeps two test sessions from running mvn into the same dir at once.
:func:`install_once` is that protocol for every install under a libs dir (HiveMQ's too).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mqtt_kafka_sync.devstack.paths import broker_file
from mqtt_kafka_sync.errors import StackError

logger = logging.getLogger(__name__)

JAVA_HINT = "a JDK 17 or newer (apt-get install openjdk-17-jre-headless)"
_MARKER = ".installed"


def require_binary(name: str, install_hint: str) -> str:
    """The full path of ``name`` on PATH, or StackError saying what to install."""
    found = shutil.which(name)
    if found is None:
        raise StackError(f"`{name}` not found on PATH: install {install_hint}")
    return found


def jars_dir(libs_dir: Path) -> Path:
    """Where the jars of the current pom live (or will) under ``libs_dir``."""
    return libs_dir / _pom_digest()[:16]


def jars_installed(libs_dir: Path) -> bool:
    return installed(jars_dir(libs_dir))


def install_jars(libs_dir: Path) -> Path:
    """Copy the broker's runtime jars from Maven Central under ``libs_dir`` unless already there;
    the directory holding them."""
    require_binary("java", JAVA_HINT)
    mvn = require_binary("mvn", "Maven (apt-get install maven)")
    pom = broker_file("kafka", "pom.xml")

    def build(staging: Path) -> None:
        argv = [
            mvn,
            "-q",
            "-B",
            "-f",
            str(pom),
            "dependency:copy-dependencies",
            "-DincludeScope=runtime",
            f"-DoutputDirectory={staging}",
        ]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=900, check=False)
        if done.returncode != 0:
            shutil.rmtree(staging, ignore_errors=True)
            last = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
            raise StackError(
                "could not download the Kafka jars: is Maven Central reachable? "
                f"(ran: {' '.join(argv)})\n{last}"
            )

    target = jars_dir(libs_dir)
    return install_once(libs_dir, target, what="the Kafka jars", tools="mvn", source=pom, build=build)


def installed(target: Path) -> bool:
    """Whether :func:`install_once` finished ``target``."""
    return (target / _MARKER).is_file()


def install_once(
    libs_dir: Path, target: Path, *, what: str, tools: str, source: Path, build: Callable[[Path], None]
) -> Path:
    """``target`` (under ``libs_dir``), built by ``build`` from ``source`` unless already there.

    ``build`` fills a staging directory of this process (and removes it when it fails); only a
    finished build is marked and renamed into place, so a half-finished one is never used. Under the
    libs dir's lock, so concurrent sessions build once; older builds no running process uses are
    pruned.
    """
    libs_dir.mkdir(parents=True, exist_ok=True)
    with _exclusive(libs_dir / ".lock"):
        if installed(target):
            return target
        logger.info("installing %s into %s with %s (first run only)", what, target, tools)
        staging = libs_dir / f".staging-{os.getpid()}"
        shutil.rmtree(staging, ignore_errors=True)
        build(staging)
        (staging / _MARKER).write_text(f"{source}\n")
        shutil.rmtree(target, ignore_errors=True)  # a half-finished earlier attempt
        staging.rename(target)
        _prune(libs_dir, keep=target)
    return target


def _prune(libs_dir: Path, keep: Path) -> None:
    """Remove jars of older poms that no running process has on its class path."""
    in_use = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            in_use.add(cmdline.read_bytes())
    for old in libs_dir.iterdir():
        if old.is_dir() and old != keep and not any(str(old).encode() in line for line in in_use):
            shutil.rmtree(old, ignore_errors=True)


def _pom_digest() -> str:
    return hashlib.sha256(broker_file("kafka", "pom.xml").read_bytes()).hexdigest()


@contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with lock_path.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
