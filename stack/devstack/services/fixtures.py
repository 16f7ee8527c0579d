"""Pytest fixtures for stripe-mock and PostgreSQL, one server of each per session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from devstack.services.postgres import PostgresServer
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
