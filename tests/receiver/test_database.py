"""Both databases run a pair of units as two transactions: the first is committed before the
second starts, so a failing second unit leaves the first one's writes in place (the delivery
record outlives a failed processing); and on SQLite pairs and single units share commit
groups without mixing their outcomes; on PostgreSQL concurrent units share one transaction and
a failing one rolls back alone."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from stripe_webhook_receiver.database import (
    Database,
    DatabaseUnavailable,
    PostgresDatabase,
    SqliteDatabase,
    Transaction,
)
from stripe_webhook_receiver.migrations import migrate_sync

WEBHOOK = "billing/app"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    opened: Database
    if request.param == "sqlite":
        opened = SqliteDatabase(tmp_path / "receiver.db")
    else:
        opened = PostgresDatabase(request.getfixturevalue("postgres").new_database())
    migrate_sync(opened)
    yield opened
    opened.close()


def insert_receipt(name: str) -> Any:
    def unit(tx: Transaction) -> str:
        tx.execute(
            "INSERT INTO receipts (webhook, subscription_id, app_user_id, created_at) "
            "VALUES (?, ?, 'u', 0)",
            (WEBHOOK, name),
        )
        return name

    return unit


def receipts(database: Database) -> list[str]:
    return sorted(
        row[0]
        for row in database.run_sync(
            lambda tx: tx.execute("SELECT subscription_id FROM receipts").fetchall()
        )
    )


def then_insert(suffix: str, fail: bool = False) -> Any:
    def then(tx: Transaction, first: str) -> str:
        insert_receipt(first + suffix)(tx)
        if fail:
            raise ValueError("the second unit fails after writing")
        return first + suffix

    return then


def run(database: Database, *awaitables: Any) -> list[Any]:
    async def together() -> list[Any]:
        results = await asyncio.gather(*awaitables, return_exceptions=True)
        await database.aclose()
        return results

    return asyncio.run(together())


def test_the_second_unit_gets_the_first_ones_result(database: Database) -> None:
    [result] = run(database, database.run_pair(insert_receipt("sub_a"), then_insert("_then")))
    assert result == "sub_a_then"
    assert receipts(database) == ["sub_a", "sub_a_then"]


def test_a_failing_second_unit_keeps_the_first_units_commit(database: Database) -> None:
    [failed] = run(
        database, database.run_pair(insert_receipt("sub_b"), then_insert("_then", fail=True))
    )
    assert isinstance(failed, ValueError)
    assert receipts(database) == ["sub_b"]


def test_pairs_and_single_units_in_one_group_keep_their_own_outcomes(
    database: Database,
) -> None:
    database.run_sync(insert_receipt("sub_x"))
    ok_pair, failed_pair, single, failed_first = run(
        database,
        database.run_pair(insert_receipt("sub_p1"), then_insert("_then")),
        database.run_pair(insert_receipt("sub_p2"), then_insert("_then", fail=True)),
        database.run(insert_receipt("sub_s")),
        # The first unit fails (the id exists already): its second unit never runs.
        database.run_pair(insert_receipt("sub_x"), then_insert("_never")),
    )
    assert ok_pair == "sub_p1_then"
    assert isinstance(failed_pair, ValueError)
    assert single == "sub_s"
    assert isinstance(failed_first, Exception)
    assert receipts(database) == ["sub_p1", "sub_p1_then", "sub_p2", "sub_s", "sub_x"]


def test_insert_returns_each_new_rows_id(database: Database) -> None:
    def unit(tx: Transaction) -> list[tuple[int, str]]:
        ids = [
            tx.insert(
                "INSERT INTO deliveries (webhook, outcome, received_at) VALUES (?, ?, ?)",
                (WEBHOOK, outcome, 0),
            )
            for outcome in ("first", "second", "third")
        ]
        rows = tx.execute("SELECT id, outcome FROM deliveries ORDER BY id").fetchall()
        assert [row[0] for row in rows] == ids
        return [(int(row[0]), str(row[1])) for row in rows]

    rows = database.run_sync(unit)
    assert [outcome for _, outcome in rows] == ["first", "second", "third"]
    assert len({row_id for row_id, _ in rows}) == 3


def test_closing_sqlite_ends_its_commit_thread(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "threads.db")
    migrate_sync(database)

    def committers() -> list[threading.Thread]:
        return [t for t in threading.enumerate() if t.name == "sqlite-commit" and t.is_alive()]

    before = len(committers())
    [result] = run(database, database.run(insert_receipt("sub_t")))
    assert result == "sub_t"
    assert receipts(database) == ["sub_t"]
    database.close()
    assert len(committers()) == before


@pytest.mark.integration
def test_concurrent_postgres_units_commit_as_one_group(postgres: Any) -> None:
    database = PostgresDatabase(postgres.new_database())
    migrate_sync(database)

    def unit(name: str) -> Any:
        def insert_then_report_transaction(tx: Transaction) -> int:
            insert_receipt(name)(tx)
            return int(tx.execute("SELECT txid_current()").fetchone()[0])

        return insert_then_report_transaction

    names = [f"sub_g{index}" for index in range(20)]
    transactions = run(database, *(database.run(unit(name)) for name in names))
    assert len(set(transactions)) == 1
    assert receipts(database) == sorted(names)
    database.close()


@pytest.mark.integration
def test_a_failing_postgres_unit_in_a_group_rolls_back_alone(postgres: Any) -> None:
    database = PostgresDatabase(postgres.new_database())
    migrate_sync(database)
    database.run_sync(insert_receipt("sub_taken"))
    good, duplicate, also_good = run(
        database,
        database.run(insert_receipt("sub_one")),
        database.run(insert_receipt("sub_taken")),
        database.run(insert_receipt("sub_two")),
    )
    assert (good, also_good) == ("sub_one", "sub_two")
    assert isinstance(duplicate, Exception)
    assert receipts(database) == ["sub_one", "sub_taken", "sub_two"]
    database.close()


@pytest.mark.integration
def test_a_connection_lost_inside_a_postgres_group_is_unavailable_for_every_unit(
    postgres: Any,
) -> None:
    """The server ends the connection in the middle of a group (as an immediate shutdown
    does): the rollback cannot reach it either, and every unit of the group gets
    DatabaseUnavailable (a 503, which Stripe retries), not a driver exception (a 500)."""
    database = PostgresDatabase(postgres.new_database())
    migrate_sync(database)

    def connection_cut(tx: Transaction) -> None:
        tx.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    outcomes = run(
        database,
        database.run(insert_receipt("sub_before")),
        database.run(connection_cut),
        database.run(insert_receipt("sub_after")),
    )
    assert [type(outcome) for outcome in outcomes] == [DatabaseUnavailable] * 3
    assert receipts(database) == []
    assert database.run_sync(insert_receipt("sub_later")) == "sub_later"
    database.close()


@pytest.mark.integration
def test_a_postgres_group_that_loses_a_deadlock_runs_again_and_commits(postgres: Any) -> None:
    """Replicas' groups can lock the same rows in opposite orders. The group the server picks
    as the deadlock's victim is run again (a deadlock is no outage), so its callers get their
    results, not a 503."""
    url = postgres.new_database()
    database = PostgresDatabase(url)
    migrate_sync(database)
    for name in ("sub_x", "sub_y"):
        database.run_sync(insert_receipt(name))
    attempts: list[int] = []
    group_holds_x = threading.Event()

    def x_then_y(tx: Transaction) -> str:
        attempts.append(int(tx.execute("SELECT pg_backend_pid()").fetchone()[0]))
        tx.execute("UPDATE receipts SET app_user_id = 'group' WHERE subscription_id = 'sub_x'")
        group_holds_x.set()
        tx.execute("UPDATE receipts SET app_user_id = 'group' WHERE subscription_id = 'sub_y'")
        return "done"

    def other_replica(holder: psycopg.Connection[Any], watcher: psycopg.Connection[Any]) -> None:
        assert group_holds_x.wait(30)
        # Close the cycle only once the group waits for `sub_y`, so that its wait is the
        # older one and the server's deadlock check, which runs first in its backend, ends it.
        while not watcher.execute(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
            (attempts[0],),
        ).fetchone()[0]:
            time.sleep(0.01)
        holder.execute("UPDATE receipts SET app_user_id = 'other' WHERE subscription_id = 'sub_x'")
        holder.commit()

    with (
        psycopg.connect(url) as holder,
        psycopg.connect(url, autocommit=True) as watcher,
    ):
        holder.execute("UPDATE receipts SET app_user_id = 'other' WHERE subscription_id = 'sub_y'")
        thread = threading.Thread(target=other_replica, args=(holder, watcher))
        thread.start()
        [result] = run(database, database.run(x_then_y))
        thread.join(30)
    assert result == "done"
    assert len(attempts) == 2
    owners = database.run_sync(
        lambda tx: tx.execute(
            "SELECT app_user_id FROM receipts ORDER BY subscription_id"
        ).fetchall()
    )
    assert [row[0] for row in owners] == ["group", "group"]
    database.close()


@pytest.mark.integration
def test_a_postgres_statement_answered_later_fails_only_its_own_unit(postgres: Any) -> None:
    """A statement whose answer is read at the commit (`execute_later`) fails there, after the
    other units ran; the group runs again to find whose it was, and only that unit fails."""
    database = PostgresDatabase(postgres.new_database())
    migrate_sync(database)
    database.run_sync(insert_receipt("sub_taken"))

    def insert_later(name: str) -> Any:
        def unit(tx: Transaction) -> Any:
            return tx.execute_later(
                "INSERT INTO receipts (webhook, subscription_id, app_user_id, created_at) "
                "VALUES (?, ?, 'u', 0) RETURNING subscription_id",
                (WEBHOOK, name),
                lambda cursor: cursor.fetchone()[0],
            )

        return unit

    first, taken, last = run(
        database,
        database.run(insert_later("sub_a")),
        database.run(insert_later("sub_taken")),
        database.run(insert_later("sub_b")),
    )
    assert (first, last) == ("sub_a", "sub_b")
    assert isinstance(taken, psycopg.errors.UniqueViolation)
    assert receipts(database) == ["sub_a", "sub_b", "sub_taken"]
    database.close()
