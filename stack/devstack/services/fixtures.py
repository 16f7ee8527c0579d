"""Pytest fixtures for stripe-mock and PostgreSQL, one server of each per session, and for
Prometheus, started by each test with the configuration it needs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devstack.services.postgres import PostgresServer
from devstack.services.prometheus import PrometheusServer
from devstack.services.stripe_mock import StripeMock


@pytest.fixture(scope="session")
def stripe_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeMock]:
    """Stripe's own stripe-mock, to check requests against Stripe's OpenAPI specification."""
    server = StripeMock(tmp_path_factory.mktemp("stripe-mock")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A PostgreSQL server; `.new_database()` gives each test an empty database of its own."""
    server = PostgresServer(tmp_path_factory.mktemp("postgres")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def start_prometheus(tmp_path: Path) -> Iterator[Callable[[str], PrometheusServer]]:
    """`start_prometheus(config)` starts a Prometheus with that prometheus.yml (its targets are
    the test's own processes); every one started is stopped by PID after the test."""
    started: list[PrometheusServer] = []

    def start(config: str) -> PrometheusServer:
        server = PrometheusServer(tmp_path / f"prometheus-{len(started)}", config)
        started.append(server)
        return server.start()

    yield start
    for server in started:
        server.stop()
