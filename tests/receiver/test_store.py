"""The store on SQLite and on PostgreSQL: migrations, dedupe, ordering, receipts and their
replay, what each delivery's record keeps, retention. The two databases process a delivery
with different SQL (one statement on PostgreSQL, three on SQLite), so every behaviour here is
checked on both."""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stripe_webhook_receiver.cli import main as cli_main
from stripe_webhook_receiver.database import Database, PostgresDatabase, SqliteDatabase
from stripe_webhook_receiver.events import STATUS_ORDER, parse_envelope, parse_subscription
from stripe_webhook_receiver.migrations import LATEST, current_version_sync, migrate_sync
from stripe_webhook_receiver.store import Delivery, Outcome, Store
from tests.receiver.payloads import deleted_event, encode, subscription_event

WEBHOOK = "billing/app"
CREATED = 1_790_000_000


DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)]


def open_database(request: pytest.FixtureRequest, directory: Path) -> Database:
    """The database the test's parameter names: an SQLite file, or a fresh PostgreSQL one."""
    if request.param == "sqlite":
        return SqliteDatabase(directory / "store.db")
    return PostgresDatabase(request.getfixturevalue("postgres").new_database())


class Harness:
    """A migrated store driven from synchronous code through its own event loop."""

    def __init__(self, database: Database) -> None:
        self.database = database
        migrate_sync(self.database)
        self.store = Store(self.database)
        self.loop = asyncio.new_event_loop()

    def run(self, awaitable: Any) -> Any:
        return self.loop.run_until_complete(awaitable)

    def deliver(self, event: dict[str, Any], webhook: str = WEBHOOK) -> Outcome:
        body = encode(event)
        parsed = parse_subscription(parse_envelope(body))
        delivery = Delivery(
            webhook,
            int(time.time() * 1000),
            parsed.event_id,
            event["type"],
            parsed.state.subscription_id,
            "fp",
        )
        outcome: Outcome = self.run(self.store.record_and_process(delivery, parsed, body))
        return outcome

    def subscription(self, sub: str, webhook: str = WEBHOOK) -> tuple[Any, ...] | None:
        row = self.database.run_sync(
            lambda tx: tx.execute(
                "SELECT status, current_period_end, cancel_at_period_end, canceled_at, "
                "price_id, order_event_id, ended_at FROM subscriptions "
                "WHERE webhook = ? AND subscription_id = ?",
                (webhook, sub),
            ).fetchone()
        )
        return None if row is None else tuple(row)

    def close(self) -> None:
        self.run(self.database.aclose())
        self.loop.close()


@pytest.fixture(params=DATABASES)
def harness(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(open_database(request, tmp_path))
    yield h
    h.close()


@pytest.fixture(scope="module", params=DATABASES)
def shared(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    h = Harness(open_database(request, tmp_path_factory.mktemp("store")))
    yield h
    h.close()


def test_migrations_run_once_and_record_their_version(tmp_path: Path) -> None:
    database = SqliteDatabase(tmp_path / "m.db")
    try:
        assert current_version_sync(database) == 0
        assert migrate_sync(database) == list(range(1, LATEST + 1))
        assert migrate_sync(database) == []
        assert current_version_sync(database) == LATEST
    finally:
        database.close()
    with sqlite3.connect(tmp_path / "m.db") as connection:
        tables = {r[0] for r in connection.execute("SELECT name FROM sqlite_master")}
        mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert {"deliveries", "processed_events", "receipts", "subscriptions"} <= tables
    assert mode == "wal"


def test_the_migrate_command_migrates_a_fresh_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/cli.db"
    assert cli_main(["migrate", "--database-url", url]) == 0
    with sqlite3.connect(tmp_path / "cli.db") as connection:
        versions = [r[0] for r in connection.execute("SELECT version FROM schema_migrations")]
    assert versions == list(range(1, LATEST + 1))


def test_an_event_is_applied_once_and_its_repeat_is_a_duplicate(harness: Harness) -> None:
    harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_dup"))
    event = subscription_event("sub_dup", created=CREATED)
    assert harness.deliver(event) is Outcome.APPLIED
    assert harness.deliver(event) is Outcome.DUPLICATE
    count = harness.database.run_sync(
        lambda tx: tx.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0]
    )
    assert count == 2


def test_an_older_event_is_stale_and_changes_nothing(harness: Harness) -> None:
    harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_old"))
    assert harness.deliver(subscription_event("sub_old", status="canceled", created=CREATED)) is (
        Outcome.APPLIED
    )
    older = subscription_event("sub_old", status="active", created=CREATED - 60)
    assert harness.deliver(older) is Outcome.STALE
    state = harness.subscription("sub_old")
    assert state is not None
    assert state[0] == "canceled"


def test_without_a_receipt_the_event_waits_and_the_receipt_replays_it(harness: Harness) -> None:
    event = subscription_event("sub_wait", status="past_due", created=CREATED)
    assert harness.deliver(event) is Outcome.RECEIPT_NOT_FOUND
    assert harness.subscription("sub_wait") is None
    result = harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_wait"))
    assert (result.created, result.conflict, result.replayed) == (True, False, 1)
    state = harness.subscription("sub_wait")
    assert state is not None
    assert state[0] == "past_due"
    # Stripe's own retry of the same event now finds it done.
    assert harness.deliver(event) is Outcome.DUPLICATE
    again = harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_wait"))
    assert (again.created, again.conflict, again.replayed) == (False, False, 0)


def test_each_delivery_record_keeps_its_outcome_and_the_payload_only_while_it_waits(
    harness: Harness,
) -> None:
    def records() -> list[tuple[Any, ...]]:
        return harness.database.run_sync(
            lambda tx: [
                (r[0], r[1], None if r[2] is None else bytes(r[2]))
                for r in tx.execute(
                    "SELECT outcome, status_code, payload FROM deliveries ORDER BY id"
                ).fetchall()
            ]
        )

    waiting = subscription_event("sub_rec", status="active", created=CREATED)
    assert harness.deliver(waiting) is Outcome.RECEIPT_NOT_FOUND
    assert records() == [("receipt_not_found", 422, encode(waiting))]
    harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_rec"))
    newer = subscription_event("sub_rec", status="past_due", created=CREATED + 60)
    older = subscription_event("sub_rec", status="canceled", created=CREATED - 60)
    assert harness.deliver(newer) is Outcome.APPLIED
    assert harness.deliver(older) is Outcome.STALE
    assert harness.deliver(newer) is Outcome.DUPLICATE
    assert records() == [
        ("replayed_applied", 422, None),
        ("applied", 200, None),
        ("stale", 200, None),
        ("duplicate", 200, None),
    ]
    state = harness.subscription("sub_rec")
    assert state is not None
    assert state[0] == "past_due"


def test_a_subscription_in_billing_trouble_keeps_when_the_trouble_began(
    harness: Harness,
) -> None:
    harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_bill"))
    for offset, status in ((0, "active"), (60, "past_due"), (120, "unpaid"), (180, "active")):
        event = subscription_event("sub_bill", status=status, created=CREATED + offset)
        assert harness.deliver(event) is Outcome.APPLIED
        since = harness.database.run_sync(
            lambda tx: tx.execute(
                "SELECT billing_issues_since FROM subscriptions WHERE subscription_id = ?",
                ("sub_bill",),
            ).fetchone()[0]
        )
        assert since == {0: None, 60: CREATED + 60, 120: CREATED + 60, 180: None}[offset]


def test_quotes_backslashes_and_other_scripts_in_an_event_are_stored_as_sent(
    harness: Harness,
) -> None:
    """On PostgreSQL a group's statements are sent with their values written into the query
    (`database._Batch`): a value must come back exactly as sent, never read as SQL."""
    sub = "sub_q'uote\\"
    price = "price_'); DROP TABLE subscriptions; --\\ é ☃ $1 %s"
    harness.run(harness.store.register_receipt(WEBHOOK, "o'brien", sub))
    event = subscription_event(sub, price=price, created=CREATED, event_id="evt_'\\%")
    assert harness.deliver(event) is Outcome.APPLIED
    state = harness.subscription(sub)
    assert state is not None
    assert (state[4], state[5]) == (price, "evt_'\\%")
    assert harness.deliver(event) is Outcome.DUPLICATE
    _, rows = harness.run(harness.store.subscriber(WEBHOOK, "o'brien"))
    assert [(r.state.subscription_id, r.state.customer) for r in rows] == [(sub, "cus_q'uote\\")]


def test_a_token_of_another_user_conflicts(harness: Harness) -> None:
    harness.run(harness.store.register_receipt(WEBHOOK, "alice", "sub_c"))
    result = harness.run(harness.store.register_receipt(WEBHOOK, "bob", "sub_c"))
    assert result.conflict
    # The same token under another webhook (another app) is that app's own business.
    other = harness.run(harness.store.register_receipt("other/app", "bob", "sub_c"))
    assert other.created


def test_webhooks_do_not_see_each_others_subscriptions(harness: Harness) -> None:
    harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_iso"))
    harness.deliver(subscription_event("sub_iso", created=CREATED))
    _, rows = harness.run(harness.store.subscriber("other/app", "user"))
    assert rows == []
    _, rows = harness.run(harness.store.subscriber(WEBHOOK, "user"))
    assert [r.state.subscription_id for r in rows] == ["sub_iso"]


def test_retention_prunes_old_deliveries_and_event_ids(harness: Harness) -> None:
    harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_p"))
    harness.deliver(subscription_event("sub_p", created=CREATED))
    removed = harness.run(harness.store.prune(int(time.time() * 1000) + 1000))
    assert removed == 2
    assert harness.run(harness.store.prune(int(time.time() * 1000) + 1000)) == 0


@pytest.mark.parametrize("first", [0, 1])
def test_updates_that_tie_on_the_ordering_key_end_in_the_last_to_arrive(
    harness: Harness, first: int
) -> None:
    sub = f"sub_tie{first}"
    harness.run(harness.store.register_receipt(WEBHOOK, "user", sub))
    events = [
        subscription_event(sub, created=CREATED, period_end=CREATED + 9, price=f"price_{i}")
        for i in range(2)
    ]
    harness.deliver(events[first])
    assert harness.deliver(events[1 - first]) is Outcome.APPLIED
    state = harness.subscription(sub)
    assert state is not None
    assert state[4] == f"price_{1 - first}"


def test_a_deletion_cancels_and_ends_the_subscription(harness: Harness) -> None:
    harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_del"))
    harness.deliver(subscription_event("sub_del", created=CREATED - 10, period_end=CREATED + 900))
    deletion = deleted_event("sub_del", ended_at=CREATED, period_end=CREATED + 900)
    assert harness.deliver(deletion) is Outcome.APPLIED
    assert harness.subscription("sub_del") == (
        "canceled",
        CREATED + 900,
        0,
        CREATED,
        "price_monthly",
        deletion["id"],
        CREATED,
    )
    _, (row,) = harness.run(harness.store.subscriber(WEBHOOK, "user"))
    assert (row.state.status, row.state.ended_at) == ("canceled", CREATED)


@pytest.mark.parametrize(
    "late",
    [
        {"created": CREATED - 60},  # older by the event's time
        {"created": CREATED, "period_end": CREATED + 5000},  # same second, later period
        {"created": CREATED + 60, "period_end": CREATED + 5000},  # even stamped later
    ],
    ids=["older", "same-second-later-period", "stamped-later"],
)
def test_an_update_arriving_after_the_deletion_never_revives_it(
    harness: Harness, late: dict[str, int]
) -> None:
    sub = f"sub_rev{late['created'] - CREATED}{late.get('period_end', 0)}"
    harness.run(harness.store.register_receipt(WEBHOOK, "user", sub))
    deletion = deleted_event(sub, ended_at=CREATED, period_end=CREATED + 900)
    assert harness.deliver(deletion) is Outcome.APPLIED
    assert harness.deliver(subscription_event(sub, status="active", **late)) is Outcome.STALE
    state = harness.subscription(sub)
    assert state is not None
    assert (state[0], state[5], state[6]) == ("canceled", deletion["id"], CREATED)


def test_a_deletion_arriving_after_updates_applies_whatever_their_times(
    harness: Harness,
) -> None:
    harness.run(harness.store.register_receipt(WEBHOOK, "user", "sub_late_del"))
    harness.deliver(subscription_event("sub_late_del", created=CREATED, period_end=CREATED + 5000))
    deletion = deleted_event("sub_late_del", ended_at=CREATED, period_end=CREATED + 900)
    assert harness.deliver(deletion) is Outcome.APPLIED
    state = harness.subscription("sub_late_del")
    assert state is not None
    assert (state[0], state[6]) == ("canceled", CREATED)


def _ordering(update: tuple[int, int, str, bool, bool]) -> tuple[object, ...]:
    created, period, status, _cancel, deleted = update
    return (created, period, "canceled" if deleted else status, deleted)


updates = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=5),  # created offset: collisions on purpose
        st.integers(min_value=0, max_value=3),  # period offset
        st.sampled_from(STATUS_ORDER),
        st.booleans(),
        st.booleans(),  # a `customer.subscription.deleted`: canceled, ended at its creation
    ),
    min_size=1,
    max_size=6,
    # Updates that tie on the whole ordering key have no newest; see the test below.
    unique_by=_ordering,
)
counter = itertools.count()


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(updates=updates, data=st.data())
def test_any_order_of_the_same_updates_ends_in_the_state_of_the_newest(
    shared: Harness, updates: list[tuple[int, int, str, bool, bool]], data: st.DataObject
) -> None:
    sub = f"sub_prop{next(counter)}"
    shared.run(shared.store.register_receipt(WEBHOOK, "user", sub))
    events = [
        deleted_event(
            sub,
            ended_at=CREATED + created,
            period_end=CREATED + 86400 * (1 + period),
            price=f"price_{index}",
            event_id=f"evt_{sub}_{index}",
        )
        if deleted
        else subscription_event(
            sub,
            created=CREATED + created,
            period_end=CREATED + 86400 * (1 + period),
            status=status,
            cancel_at_period_end=cancel,
            price=f"price_{index}",
            event_id=f"evt_{sub}_{index}",
        )
        for index, (created, period, status, cancel, deleted) in enumerate(updates)
    ]
    order = data.draw(st.permutations(events))
    for event in order:
        shared.deliver(event)
    newest = max(events, key=lambda e: parse_subscription(parse_envelope(encode(e))).order)
    state = shared.subscription(sub)
    assert state is not None
    assert state[0] == newest["data"]["object"]["status"]
    assert state[4] == newest["data"]["object"]["items"]["data"][0]["price"]["id"]
    assert state[5] == newest["id"]
    assert bool(state[2]) == newest["data"]["object"]["cancel_at_period_end"]
    assert state[6] == newest["data"]["object"]["ended_at"]
    if any(e["type"] == "customer.subscription.deleted" for e in events):
        assert state[0] == "canceled"


def test_a_failing_unit_rolls_back_alone_in_its_commit_group(harness: Harness) -> None:
    def insert(name: str, fail: bool = False) -> Any:
        def unit(tx: Any) -> str:
            tx.execute(
                "INSERT INTO receipts (webhook, subscription_id, app_user_id, created_at) "
                "VALUES (?, ?, 'u', 0)",
                (WEBHOOK, name),
            )
            if fail:
                raise ValueError("this unit fails after writing")
            return name

        return unit

    async def together() -> list[Any]:
        return await asyncio.gather(
            harness.database.run(insert("sub_g1")),
            harness.database.run(insert("sub_g2", fail=True)),
            harness.database.run(insert("sub_g3")),
            return_exceptions=True,
        )

    first, failed, third = harness.run(together())
    assert (first, third) == ("sub_g1", "sub_g3")
    assert isinstance(failed, ValueError)
    stored = harness.database.run_sync(
        lambda tx: [r[0] for r in tx.execute("SELECT subscription_id FROM receipts").fetchall()]
    )
    assert sorted(stored) == ["sub_g1", "sub_g3"]
