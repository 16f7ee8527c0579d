"""`stripe_webhook_receiver_database_up` follows the real database: 1 while PostgreSQL answers,
0 while it is stopped, 1 again once it is back, without a delivery to notice it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.processes import wait_until
from devstack.project.receiver_process import ReceiverProcess
from devstack.services.postgres import PostgresServer
from tests.receiver.layout import project

pytestmark = pytest.mark.integration

GAUGE = "stripe_webhook_receiver_database_up"
# The receiver looks every 5 s (Settings.database_check_interval); allow for a slow machine.
NOTICE_TIMEOUT = 30.0


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own: stopping it disturbs no other test."""
    server = PostgresServer(tmp_path / "pg").start()
    yield server
    server.stop()


def gauge(receiver: ReceiverProcess) -> str:
    for line in httpx.get(f"{receiver.url}/metrics", timeout=10).text.splitlines():
        if line.startswith(f"{GAUGE} "):
            return line.split()[1]
    raise AssertionError(f"{GAUGE} is not exported")


def test_database_up_follows_postgres_going_away_and_back(
    pg: PostgresServer, tmp_path: Path
) -> None:
    secrets_dir = tmp_path / "secrets"
    project(secrets_dir, {})
    receiver = ReceiverProcess(tmp_path, secrets_dir, pg.new_database()).start()
    try:
        wait_until(lambda: gauge(receiver) == "1.0", timeout=NOTICE_TIMEOUT, what="database up")
        pg.stop_server("fast")
        wait_until(lambda: gauge(receiver) == "0.0", timeout=NOTICE_TIMEOUT, what="database down")
        pg.start_server()
        wait_until(lambda: gauge(receiver) == "1.0", timeout=NOTICE_TIMEOUT, what="database back")
    finally:
        receiver.stop()
