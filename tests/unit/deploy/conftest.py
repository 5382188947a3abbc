"""The first test here that needs Helm waits for the build `make test` started in the background, or
builds it when pytest runs alone (scripts/install-helm.sh: 4 to 7 minutes once, on 2 shared cores);
the time limit allows for it."""

from __future__ import annotations

from pathlib import Path

import pytest

HELM_BUILD_TIMEOUT_S = 1800


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in item.path.parents:
            item.add_marker(pytest.mark.timeout(HELM_BUILD_TIMEOUT_S))
