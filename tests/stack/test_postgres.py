"""PostgreSQL from Debian's packages: fresh, isolated databases on a loopback-only server, durable
(fsync on) only when asked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from devstack.services.postgres import PostgresServer

pytestmark = pytest.mark.integration


def test_new_database_is_empty_and_usable(postgres: PostgresServer) -> None:
    url = postgres.new_database()
    with psycopg.connect(url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'"
        ).fetchone()
        conn.execute("CREATE TABLE deliveries (event_id text PRIMARY KEY)")
        conn.execute("INSERT INTO deliveries VALUES ('evt_1')")
        rows = conn.execute("SELECT event_id FROM deliveries").fetchall()
    assert tables == (0,)
    assert rows == [("evt_1",)]


def test_databases_are_isolated(postgres: PostgresServer) -> None:
    first, second = postgres.new_database(), postgres.new_database()
    with psycopg.connect(first) as conn:
        conn.execute("CREATE TABLE only_here (id int)")
    with psycopg.connect(second) as conn:
        found = conn.execute("SELECT to_regclass('public.only_here')").fetchone()
    assert first != second
    assert found == (None,)


def test_server_listens_on_loopback_only(postgres: PostgresServer) -> None:
    with psycopg.connect(postgres.url) as conn:
        listen = conn.execute("SHOW listen_addresses").fetchone()
    assert listen == ("127.0.0.1",)


@pytest.fixture(scope="module")
def restartable(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A server of this module's own, so that restarting it disturbs no other test."""
    server = PostgresServer(tmp_path_factory.mktemp("restartable")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["fast", "immediate", "kill"])
def test_restart_keeps_committed_data_and_url(restartable: PostgresServer, mode: str) -> None:
    url = restartable.new_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (id int)")
        conn.execute("INSERT INTO kept VALUES (7)")
    held = psycopg.connect(url, autocommit=True)
    old_pid = restartable.pid

    restartable.restart(mode)

    with pytest.raises(psycopg.OperationalError):
        held.execute("SELECT 1")
    held.close()
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT id FROM kept").fetchall()
    assert rows == [(7,)]
    assert restartable.pid != old_pid


def test_stop_deletes_the_cluster(tmp_path: Path) -> None:
    server = PostgresServer(tmp_path).start()
    cluster = server.data_dir.parent

    server.stop()

    assert not cluster.exists()
    assert server.process is not None
    assert not server.process.alive()


def settings(server: PostgresServer) -> tuple[str, ...]:
    with psycopg.connect(server.url) as conn:
        names = ("fsync", "synchronous_commit", "full_page_writes")
        return tuple(str(conn.execute(f"SHOW {name}").fetchone()[0]) for name in names)  # type: ignore[index]


def test_a_durable_server_flushes_every_commit_and_the_default_one_does_not(
    postgres: PostgresServer, tmp_path: Path
) -> None:
    assert settings(postgres) == ("off", "on", "off")
    durable = PostgresServer(tmp_path, durable=True).start()
    try:
        assert settings(durable) == ("on", "on", "on")
    finally:
        durable.stop()
