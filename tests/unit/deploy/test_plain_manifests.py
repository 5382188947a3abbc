"""compose/kubernetes/ holds `helm template` of every example for users without Helm; it must stay
what the chart renders (regenerate with `make manifests` or `python -m tests.unit.deploy.chart`)."""

from __future__ import annotations

import pytest

from tests.unit.deploy.chart import EXAMPLE_NAMES, PLAIN, plain_text


@pytest.mark.parametrize("example", EXAMPLE_NAMES)
def test_the_committed_plain_manifests_equal_a_fresh_render(example: str) -> None:
    committed = PLAIN / f"{example}.yaml"
    assert committed.exists(), f"{committed} is missing: run `make manifests`"
    assert committed.read_text() == plain_text(example), (
        f"{committed} differs from the chart: run `make manifests`"
    )


def test_there_is_no_stale_plain_manifest() -> None:
    assert sorted(p.stem for p in PLAIN.glob("*.yaml")) == sorted(EXAMPLE_NAMES)
