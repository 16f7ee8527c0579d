"""What the receiver keeps: deliveries, processed event ids, receipts and subscription state.

Rules that make delivery safe with retries, duplicates and several replicas:
- every delivery is recorded in a transaction of its own before it is processed;
- an event is processed at most once per webhook: `processed_events` has the primary key
  (webhook, event id) and processing inserts into it, so a second insert of the same id (a
  retry, the other endpoint during a rotation, another replica at the same moment) finds
  the row and does nothing. Never check-then-insert;
- a subscription row is only ever replaced by an event with a greater ordering key (see
  `events`: an ended subscription first, then the event's time and the subscription's own
  period and status), by a guarded upsert: the row lock taken by the upsert makes the guard
  hold across replicas too;
- a delivery for a subscription with no receipt keeps its verified payload, so that
  registering the receipt replays it at once.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from stripe_webhook_receiver.database import Cursor, Database, Later, Transaction
from stripe_webhook_receiver.events import (
    SubscriptionEvent,
    SubscriptionState,
    parse_envelope,
    parse_subscription,
)

BILLING_ISSUE_STATUSES = ("past_due", "unpaid")


class Outcome(StrEnum):
    """What processing a verified subscription event did."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE = "stale"
    RECEIPT_NOT_FOUND = "receipt_not_found"

    @property
    def status_code(self) -> int:
        return 422 if self is Outcome.RECEIPT_NOT_FOUND else 200


@dataclass(frozen=True)
class Delivery:
    """One POST to a webhook URL, as recorded."""

    webhook: str
    received_at_ms: int
    event_id: str | None = None
    event_type: str | None = None
    subscription_id: str | None = None
    fingerprint: str | None = None


@dataclass(frozen=True)
class ReceiptResult:
    """What registering a receipt did: `conflict` names the case of another user's token."""

    created: bool
    conflict: bool
    replayed: int


@dataclass(frozen=True)
class SubscriptionRow:
    """A subscription's state as last applied, with what the store derived from its history."""

    state: SubscriptionState
    billing_issues_since: int | None
    order_created: int
    updated_at: int


SUBSCRIPTION_COLUMNS = (
    "subscription_id, customer, status, product_id, price_id, current_period_start, "
    "current_period_end, cancel_at_period_end, cancel_at, canceled_at, trial_start, trial_end, "
    "start_date, livemode, ended_at, billing_issues_since, order_created, updated_at"
)

# The subscriptions row an event writes, in this order, with each column's type for the
# statement whose values come from a SELECT (PostgreSQL types only the VALUES of an INSERT).
SUBSCRIPTION_WRITE = (
    ("webhook", "text"),
    ("subscription_id", "text"),
    ("customer", "text"),
    ("status", "text"),
    ("product_id", "text"),
    ("price_id", "text"),
    ("current_period_start", "bigint"),
    ("current_period_end", "bigint"),
    ("cancel_at_period_end", "integer"),
    ("cancel_at", "bigint"),
    ("canceled_at", "bigint"),
    ("trial_start", "bigint"),
    ("trial_end", "bigint"),
    ("start_date", "bigint"),
    ("livemode", "integer"),
    ("ended_at", "bigint"),
    ("billing_issues_since", "bigint"),
    ("order_created", "bigint"),
    ("order_period_end", "bigint"),
    ("order_status_rank", "integer"),
    ("order_event_id", "text"),
    ("updated_at", "bigint"),
)
_WRITTEN = ", ".join(column for column, _ in SUBSCRIPTION_WRITE)
_KEPT = {"webhook", "subscription_id", "billing_issues_since"}
_ON_CONFLICT = (
    "ON CONFLICT (webhook, subscription_id) DO UPDATE SET "
    + ", ".join(
        f"{column} = excluded.{column}" for column, _ in SUBSCRIPTION_WRITE if column not in _KEPT
    )
    + """,
    billing_issues_since = CASE WHEN excluded.billing_issues_since IS NULL THEN NULL
        ELSE COALESCE(subscriptions.billing_issues_since, excluded.billing_issues_since) END
WHERE (subscriptions.ended_at IS NOT NULL, subscriptions.order_created,
       subscriptions.order_period_end, subscriptions.order_status_rank)
    <= (excluded.ended_at IS NOT NULL, excluded.order_created, excluded.order_period_end,
        excluded.order_status_rank)"""
)

UPSERT_SUBSCRIPTION = (
    f"INSERT INTO subscriptions ({_WRITTEN}) "  # noqa: S608 - fixed column names
    f"VALUES ({', '.join('?' for _ in SUBSCRIPTION_WRITE)}) {_ON_CONFLICT}"
)

# On PostgreSQL, processing a delivery is this one statement, whose answer the commit group
# reads only at its commit (see `database`): mark the event processed if its subscription has
# a receipt, write the subscription if it was marked and is newer, and put the outcome and,
# without a receipt, the payload onto the delivery record. The steps are `_apply_event`'s and
# the record's UPDATE, one statement instead of three round trips; all of them see one
# snapshot. SQLite runs those three statements (its writes cost no round trip).
_OUTCOME_SQL = (
    f"CASE WHEN EXISTS (SELECT 1 FROM applied) THEN '{Outcome.APPLIED.value}' "  # noqa: S608
    f"WHEN EXISTS (SELECT 1 FROM marked) THEN '{Outcome.STALE.value}' "
    f"WHEN EXISTS (SELECT 1 FROM receipt) THEN '{Outcome.DUPLICATE.value}' "
    f"ELSE '{Outcome.RECEIPT_NOT_FOUND.value}' END"
)
PROCESS_ON_POSTGRES = f"""
WITH receipt AS (
    SELECT 1 FROM receipts WHERE webhook = ? AND subscription_id = ?
), marked AS (
    INSERT INTO processed_events (webhook, event_id, processed_at)
    SELECT ?::text, ?::text, ?::bigint WHERE EXISTS (SELECT 1 FROM receipt)
    ON CONFLICT (webhook, event_id) DO NOTHING
    RETURNING 1
), applied AS (
    INSERT INTO subscriptions ({_WRITTEN})
    SELECT {", ".join(f"?::{kind}" for _, kind in SUBSCRIPTION_WRITE)}
    WHERE EXISTS (SELECT 1 FROM marked)
    {_ON_CONFLICT}
    RETURNING 1
), outcome AS (
    SELECT {_OUTCOME_SQL} AS value
), recorded AS (
    UPDATE deliveries SET outcome = (SELECT value FROM outcome),
        status_code = CASE WHEN EXISTS (SELECT 1 FROM receipt)
            THEN {Outcome.APPLIED.status_code} ELSE {Outcome.RECEIPT_NOT_FOUND.status_code} END,
        payload = CASE WHEN EXISTS (SELECT 1 FROM receipt) THEN NULL ELSE ?::bytea END
    WHERE id = ?
)
SELECT value FROM outcome
"""  # noqa: S608 - fixed column names and outcome values


def _now_ms() -> int:
    return int(time.time() * 1000)


def _apply_event(tx: Transaction, webhook: str, event: SubscriptionEvent, now_ms: int) -> Outcome:
    """Apply one verified event in the caller's transaction; the heart of the receiver."""
    state = event.state
    # One statement on the hot path: mark the event processed if its subscription has a
    # receipt. Nothing inserted means a duplicate or no receipt; a second look tells which.
    inserted = tx.execute(
        "INSERT INTO processed_events (webhook, event_id, processed_at) SELECT ?, ?, ? "
        "WHERE EXISTS (SELECT 1 FROM receipts WHERE webhook = ? AND subscription_id = ?) "
        "ON CONFLICT (webhook, event_id) DO NOTHING",
        (webhook, event.event_id, now_ms, webhook, state.subscription_id),
    )
    if inserted.rowcount == 0:
        receipt = tx.execute(
            "SELECT 1 FROM receipts WHERE webhook = ? AND subscription_id = ?",
            (webhook, state.subscription_id),
        ).fetchone()
        return Outcome.DUPLICATE if receipt is not None else Outcome.RECEIPT_NOT_FOUND
    upserted = tx.execute(UPSERT_SUBSCRIPTION, _subscription_row(webhook, event, now_ms))
    return Outcome.APPLIED if upserted.rowcount > 0 else Outcome.STALE


def _subscription_row(webhook: str, event: SubscriptionEvent, now_ms: int) -> tuple[Any, ...]:
    """The values of `SUBSCRIPTION_WRITE` that `event` writes."""
    state = event.state
    _ended, created, period_end, rank = event.order
    issue_since = event.created if state.status in BILLING_ISSUE_STATUSES else None
    return (
        webhook,
        state.subscription_id,
        state.customer,
        state.status,
        state.product_id,
        state.price_id,
        state.current_period_start,
        state.current_period_end,
        int(state.cancel_at_period_end),
        state.cancel_at,
        state.canceled_at,
        state.trial_start,
        state.trial_end,
        state.start_date,
        int(state.livemode),
        state.ended_at,
        issue_since,
        created,
        period_end,
        rank,
        event.event_id,
        now_ms,
    )


class Store:
    """The receiver's persistent state, on SQLite or PostgreSQL."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def ping(self) -> None:
        """Raise DatabaseUnavailable unless the database answers a query."""
        await self.database.run(lambda tx: tx.execute("SELECT 1").fetchone())

    async def record_delivery(
        self, delivery: Delivery, outcome: str, status_code: int | None = None
    ) -> int:
        """Record a delivery in a transaction of its own; return its id.

        The commit does not wait for the disk: the next durable commit flushes it (see
        `database`). Used for refused deliveries, which are answered either way.
        """
        return await self.database.run(
            lambda tx: _insert_delivery(tx, delivery, outcome, status_code), durable=False
        )

    async def record_and_process(
        self, delivery: Delivery, event: SubscriptionEvent, payload: bytes
    ) -> Outcome:
        """Record the delivery in a transaction of its own, then apply `event` and write the
        outcome onto the record in a second one; return once both are on disk.

        A delivery whose subscription has no receipt keeps its payload for a replay.
        """

        def process(tx: Transaction, delivery_id: int) -> Outcome | Later[Outcome]:
            if tx.dialect == "postgresql":
                return _process_on_postgres(
                    tx, delivery.webhook, delivery_id, event, payload, _now_ms()
                )
            outcome = _apply_event(tx, delivery.webhook, event, _now_ms())
            kept = payload if outcome is Outcome.RECEIPT_NOT_FOUND else None
            tx.execute(
                "UPDATE deliveries SET outcome = ?, status_code = ?, payload = ? WHERE id = ?",
                (outcome.value, outcome.status_code, kept, delivery_id),
            )
            return outcome

        return await self.database.run_pair(
            lambda tx: _insert_delivery(tx, delivery, "received", None), process
        )

    async def register_receipt(
        self, webhook: str, app_user_id: str, subscription_id: str
    ) -> ReceiptResult:
        """Tie `subscription_id` to `app_user_id`, then replay the deliveries waiting for it."""

        def unit(tx: Transaction) -> ReceiptResult:
            now_ms = _now_ms()
            inserted = tx.execute(
                "INSERT INTO receipts (webhook, subscription_id, app_user_id, created_at) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (webhook, subscription_id) DO NOTHING",
                (webhook, subscription_id, app_user_id, now_ms),
            )
            if inserted.rowcount == 0:
                owner = tx.execute(
                    "SELECT app_user_id FROM receipts WHERE webhook = ? AND subscription_id = ?",
                    (webhook, subscription_id),
                ).fetchone()
                if owner is not None and owner[0] != app_user_id:
                    return ReceiptResult(created=False, conflict=True, replayed=0)
            replayed = _replay_waiting(tx, webhook, subscription_id, now_ms)
            return ReceiptResult(created=inserted.rowcount > 0, conflict=False, replayed=replayed)

        return await self.database.run(unit)

    async def subscriber(
        self, webhook: str, app_user_id: str
    ) -> tuple[int | None, list[SubscriptionRow]]:
        """Return when the user was first seen (ms, None if never) and their subscriptions."""

        def unit(tx: Transaction) -> tuple[int | None, list[SubscriptionRow]]:
            first = tx.execute(
                "SELECT MIN(created_at) FROM receipts WHERE webhook = ? AND app_user_id = ?",
                (webhook, app_user_id),
            ).fetchone()
            rows = tx.execute(
                f"SELECT {', '.join('s.' + c for c in SUBSCRIPTION_COLUMNS.split(', '))} "  # noqa: S608 - fixed column names
                "FROM receipts r JOIN subscriptions s ON s.webhook = r.webhook "
                "AND s.subscription_id = r.subscription_id "
                "WHERE r.webhook = ? AND r.app_user_id = ? ORDER BY s.subscription_id",
                (webhook, app_user_id),
            ).fetchall()
            return (None if first[0] is None else int(first[0])), [_row(r) for r in rows]

        return await self.database.run(unit)

    async def prune(self, older_than_ms: int) -> int:
        """Delete delivery records and processed event ids older than the retention period."""

        def unit(tx: Transaction) -> int:
            removed = tx.execute(
                "DELETE FROM deliveries WHERE received_at < ?", (older_than_ms,)
            ).rowcount
            removed += tx.execute(
                "DELETE FROM processed_events WHERE processed_at < ?", (older_than_ms,)
            ).rowcount
            return max(removed, 0)

        return await self.database.run(unit)


def _process_on_postgres(
    tx: Transaction,
    webhook: str,
    delivery_id: int,
    event: SubscriptionEvent,
    payload: bytes,
    now_ms: int,
) -> Later[Outcome]:
    """`PROCESS_ON_POSTGRES` for one delivery; its outcome is read once it is answered."""
    params = (
        *(webhook, event.state.subscription_id),
        *(webhook, event.event_id, now_ms),
        *_subscription_row(webhook, event, now_ms),
        *(payload, delivery_id),
    )
    return tx.execute_later(PROCESS_ON_POSTGRES, params, _read_outcome)


def _read_outcome(cursor: Cursor) -> Outcome:
    return Outcome(cursor.fetchone()[0])


def _insert_delivery(
    tx: Transaction, delivery: Delivery, outcome: str, status_code: int | None
) -> Later[int]:
    return tx.insert_later(
        "INSERT INTO deliveries (webhook, event_id, event_type, subscription_id, "
        "outcome, status_code, secret_fingerprint, received_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            delivery.webhook,
            delivery.event_id,
            delivery.event_type,
            delivery.subscription_id,
            outcome,
            status_code,
            delivery.fingerprint,
            delivery.received_at_ms,
        ),
    )


def _row(row: Any) -> SubscriptionRow:
    values = list(row)
    values[7] = bool(values[7])
    values[13] = bool(values[13])
    return SubscriptionRow(SubscriptionState(*values[:15]), *values[15:])


def _replay_waiting(tx: Transaction, webhook: str, subscription_id: str, now_ms: int) -> int:
    """Apply the stored payloads that waited for this subscription's receipt."""
    waiting = tx.execute(
        "SELECT id, payload FROM deliveries WHERE webhook = ? AND subscription_id = ? "
        "AND payload IS NOT NULL ORDER BY id",
        (webhook, subscription_id),
    ).fetchall()
    for delivery_id, payload in waiting:
        event = parse_subscription(parse_envelope(bytes(payload)))
        outcome = _apply_event(tx, webhook, event, now_ms)
        tx.execute(
            "UPDATE deliveries SET payload = NULL, replayed_at = ?, outcome = ? WHERE id = ?",
            (now_ms, f"replayed_{outcome.value}", delivery_id),
        )
    return len(waiting)
