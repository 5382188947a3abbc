"""Where the stack's inputs live: the broker configs under ``compose/`` of the source checkout."""

from __future__ import annotations

from pathlib import Path

from mqtt_kafka_sync.errors import StackError

# mqtt_kafka_sync/devstack/paths.py -> the repository root of an editable install.
_CHECKOUT = Path(__file__).resolve().parents[2]


def repo_root() -> Path:
    """The source checkout this package was installed from (``pip install -e .``)."""
    if not (_CHECKOUT / "compose" / "kafka" / "pom.xml").is_file():
        raise StackError(
            f"compose/kafka/pom.xml not found under {_CHECKOUT}: the local stack runs from a source "
            "checkout of mqtt-kafka-sync installed with `pip install -e .`"
        )
    return _CHECKOUT


def compose_file(*parts: str) -> Path:
    """A file under ``<repo>/compose/``, which must exist."""
    path = repo_root().joinpath("compose", *parts)
    if not path.is_file():
        raise StackError(f"{path} is missing from the source checkout")
    return path
