"""Versioned schema migrations, run at start and by `stripe-webhook-receiver migrate`.

Each migration is a version number and its statements; `{id}` and `{blob}` stand for the
column types that differ between SQLite and PostgreSQL. Applied versions are recorded in
`schema_migrations`. Migrations never change once released: a change is a new version.
"""

from __future__ import annotations

import time

from stripe_webhook_receiver.database import Database, Transaction

TYPES = {
    "sqlite": {"id": "INTEGER PRIMARY KEY", "blob": "BLOB"},
    "postgresql": {"id": "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY", "blob": "BYTEA"},
}
# Any constant: replicas starting at once serialize their migrations on this lock.
ADVISORY_LOCK = 7_531_901

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "deliveries, processed events, receipts and subscriptions",
        [
            """CREATE TABLE deliveries (
                id {id},
                webhook TEXT NOT NULL,
                event_id TEXT,
                event_type TEXT,
                subscription_id TEXT,
                outcome TEXT NOT NULL,
                status_code INTEGER,
                secret_fingerprint TEXT,
                received_at BIGINT NOT NULL,
                payload {blob},
                replayed_at BIGINT
            )""",
            "CREATE INDEX deliveries_received_at ON deliveries (received_at)",
            """CREATE INDEX deliveries_waiting ON deliveries (webhook, subscription_id)
               WHERE payload IS NOT NULL""",
            """CREATE TABLE processed_events (
                webhook TEXT NOT NULL,
                event_id TEXT NOT NULL,
                processed_at BIGINT NOT NULL,
                PRIMARY KEY (webhook, event_id)
            )""",
            "CREATE INDEX processed_events_processed_at ON processed_events (processed_at)",
            """CREATE TABLE receipts (
                webhook TEXT NOT NULL,
                subscription_id TEXT NOT NULL,
                app_user_id TEXT NOT NULL,
                created_at BIGINT NOT NULL,
                PRIMARY KEY (webhook, subscription_id)
            )""",
            "CREATE INDEX receipts_app_user ON receipts (webhook, app_user_id)",
            """CREATE TABLE subscriptions (
                webhook TEXT NOT NULL,
                subscription_id TEXT NOT NULL,
                customer TEXT,
                status TEXT NOT NULL,
                product_id TEXT,
                price_id TEXT,
                current_period_start BIGINT,
                current_period_end BIGINT,
                cancel_at_period_end INTEGER NOT NULL,
                cancel_at BIGINT,
                canceled_at BIGINT,
                trial_start BIGINT,
                trial_end BIGINT,
                start_date BIGINT,
                livemode INTEGER NOT NULL,
                billing_issues_since BIGINT,
                order_created BIGINT NOT NULL,
                order_period_end BIGINT NOT NULL,
                order_status_rank INTEGER NOT NULL,
                order_event_id TEXT NOT NULL,
                updated_at BIGINT NOT NULL,
                PRIMARY KEY (webhook, subscription_id)
            )""",
        ],
    ),
    (
        2,
        "subscriptions keep ended_at (customer.subscription.deleted)",
        ["ALTER TABLE subscriptions ADD COLUMN ended_at BIGINT"],
    ),
]

LATEST = MIGRATIONS[-1][0]


def _ensure_table(tx: Transaction) -> None:
    tx.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        "version INTEGER PRIMARY KEY, description TEXT NOT NULL, applied_at BIGINT NOT NULL)"
    )


def _apply(tx: Transaction) -> list[int]:
    if tx.dialect == "postgresql":
        tx.execute("SELECT pg_advisory_xact_lock(?)", (ADVISORY_LOCK,))
    _ensure_table(tx)
    done = {row[0] for row in tx.execute("SELECT version FROM schema_migrations").fetchall()}
    applied = []
    for version, description, statements in MIGRATIONS:
        if version in done:
            continue
        for statement in statements:
            tx.execute(statement.format(**TYPES[tx.dialect]))
        tx.execute(
            "INSERT INTO schema_migrations (version, description, applied_at) VALUES (?, ?, ?)",
            (version, description, int(time.time())),
        )
        applied.append(version)
    return applied


def _current(tx: Transaction) -> int:
    _ensure_table(tx)
    row = tx.execute("SELECT MAX(version) FROM schema_migrations").fetchone()
    return int(row[0] or 0)


async def migrate(database: Database) -> list[int]:
    """Apply every migration the database lacks, in one transaction; return their versions."""
    return await database.run(_apply)


def migrate_sync(database: Database) -> list[int]:
    """`migrate` for callers without an event loop (the `migrate` command)."""
    return database.run_sync(_apply)


def current_version_sync(database: Database) -> int:
    """Return the newest applied version (0 for a database never migrated)."""
    return database.run_sync(_current)
