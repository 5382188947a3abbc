"""Where the stack's inputs and state live, from a source checkout and from a plain ``pip install``.

The brokers' inputs (Kafka's and HiveMQ's Maven poms, HiveMQ's launcher, the Mosquitto and logging
configs) ship inside the package, under ``devstack/brokers/``, so ``stack``, ``demo`` and the tests'
fixtures work wherever the package is installed. The stack's state (jars, data, logs) goes under
``<checkout>/.stack`` in a source checkout, else under the user's cache directory.
"""

from __future__ import annotations

import os
from pathlib import Path

from mqtt_kafka_sync.errors import StackError

BROKERS = Path(__file__).resolve().parent / "brokers"
# mqtt_kafka_sync/devstack/paths.py -> the repository root of an editable install.
_CHECKOUT = Path(__file__).resolve().parents[2]
EXAMPLE_CONNECTOR = "example-telemetry.json"
"""The demo's connector: ``connectors/example-telemetry.json`` of a checkout, or its packaged copy."""


def broker_file(*parts: str) -> Path:
    """A file the local brokers need, shipped in the package (``devstack/brokers/...``)."""
    path = BROKERS.joinpath(*parts)
    if not path.is_file():
        raise StackError(f"{path} is missing from the installed package: reinstall mqtt-kafka-sync")
    return path


def in_checkout() -> bool:
    """Whether the package runs from a source checkout (``pip install -e .``)."""
    return (_CHECKOUT / "pyproject.toml").is_file() and (_CHECKOUT / "mqtt_kafka_sync").is_dir()


def repo_root() -> Path:
    """The source checkout this package was installed from (``pip install -e .``)."""
    if not in_checkout():
        raise StackError(f"{_CHECKOUT} is not a source checkout of mqtt-kafka-sync")
    return _CHECKOUT


def state_dir() -> Path:
    """Where the default stack keeps its jars, data and logs."""
    if in_checkout():
        return _CHECKOUT / ".stack"
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "mqtt-kafka-sync" / "stack"


def example_connector() -> Path:
    """The demo's connector file."""
    if in_checkout():
        return _CHECKOUT / "connectors" / EXAMPLE_CONNECTOR
    return broker_file(EXAMPLE_CONNECTOR)
