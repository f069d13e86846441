"""Shared fixtures."""

from __future__ import annotations

import pytest

from devices.sim.ports import free_port  # noqa: F401 (tests import it from here)
from devices.site import example_site_path, load_site


@pytest.fixture
def example_site():
    return load_site(example_site_path())


@pytest.fixture(scope="session")
def influx_server():
    """A real InfluxDB 1.6.7 on a free loopback port, for the whole test session."""
    from tests.servers import InfluxServer

    server = InfluxServer()
    server.start()
    yield server
    server.close()


@pytest.fixture(scope="session")
def victoria_server():
    """A real VictoriaMetrics on a free loopback port, for the whole test session."""
    from tests.servers import VictoriaServer

    server = VictoriaServer()
    server.start()
    yield server
    server.close()


_databases = iter(range(1, 10**6))


@pytest.fixture
def influx_db(influx_server) -> str:
    """A fresh database name on the session's InfluxDB (not created: the forwarder creates it)."""
    return f"test_{next(_databases)}"
