"""Fixtures the unit tests of several folders share."""

from __future__ import annotations

import pytest

from mqtt_kafka_sync.devstack.certs import CertSet, ensure_certs


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertSet:
    """A CA, client and broker certificates (the local secured stack's kind), made once; read only."""
    return ensure_certs(tmp_path_factory.mktemp("certs"))
