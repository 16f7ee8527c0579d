"""The CPU a delivery must cost whatever the receiver's code around it: the floor under (4)/(1).

Bare Starlette (configuration (1)) reads a request and answers it. Any receiver that keeps
the design's promises must also, for every delivery, verify the signature, parse the event,
and write what DESIGN.md makes durable: the delivery recorded in a transaction of its own
before it is processed, then the processed event id, the subscription's state and the
delivery's outcome, committed with an fsync before the answer. Each of those is measured here
on its own, in this process, as CPU time per delivery (`time.process_time`, every thread),
with the receiver's own functions and SQL statements and none of its glue: no event loop, no
group queue, no metrics or logs. The SQLite writes run in groups of GROUP deliveries, two
transactions per group as the receiver commits them (the record's with synchronous=NORMAL,
the processing's with synchronous=FULL).

If bare Starlette spends `b` µs per request at saturation and these steps `m`, no receiver
that verifies and stores as the design says can answer more than b / (b + m) of bare
Starlette's rate on the same core. The receiver's full store path (Store.record_and_process
with GROUP in flight) is measured beside it, to show what the glue adds.

    PYTHONPATH=stack .venv/bin/python -m benchmarks.receiver_floor   (a table of µs/delivery)
"""

from __future__ import annotations

import asyncio
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks import events as bench_events
from benchmarks.measurements import Spread
from benchmarks.report import markdown_table, spread_text
from stripe_webhook_receiver import store as receiver_store
from stripe_webhook_receiver.database import Transaction, open_database
from stripe_webhook_receiver.events import parse_envelope, parse_subscription
from stripe_webhook_receiver.migrations import migrate_sync
from stripe_webhook_receiver.signing import SigningSecret, verify

WEBHOOK = "bench/shop"
SECRET = "whsec_floor_benchmark_secret_0000000000"
GROUP = 16
DELIVERIES = 4096
REPEATS = 3
TOLERANCE = 300


@dataclass(frozen=True)
class Step:
    name: str
    what: str
    micros: list[float]  # per delivery, one figure per repeat

    @property
    def median(self) -> float:
        return statistics.median(self.micros)


@dataclass
class Floor:
    steps: list[Step]
    store: Step

    @property
    def mandatory(self) -> float:
        """µs per delivery of the steps no receiver can skip (the median of each)."""
        return sum(step.median for step in self.steps)

    def ceiling(self, bare_rate: float) -> float:
        """The highest share of bare Starlette's `bare_rate` such a receiver can reach."""
        bare = 1e6 / bare_rate
        return bare / (bare + self.mandatory)


def _requests(count: int, subscriptions: Sequence[str]) -> list[tuple[str, bytes]]:
    spec = bench_events.PoolSpec(SECRET, subscriptions, "/webhooks/bench/shop")
    return list(bench_events.iter_requests(spec, count, int(time.time())))


def _cpu_per_item(run: Callable[[], int]) -> float:
    """Run `run` (it returns how many deliveries it handled); return CPU µs per delivery."""
    began = time.process_time()
    handled = run()
    return (time.process_time() - began) * 1e6 / handled


def _database(folder: Path, subscriptions: Sequence[str]) -> Path:
    """Create a migrated SQLite database with a receipt for every subscription."""
    path = folder / f"floor-{time.monotonic_ns()}.db"
    database = open_database(f"sqlite:///{path}")
    migrate_sync(database)
    database.close()
    connection = sqlite3.connect(path, isolation_level=None)
    connection.executemany(
        "INSERT INTO receipts (webhook, subscription_id, app_user_id, created_at) "
        "VALUES (?, ?, ?, 0)",
        [(WEBHOOK, sub, f"user-{sub}") for sub in subscriptions],
    )
    connection.close()
    return path


def _parsed(requests: Sequence[tuple[str, bytes]]) -> list[receiver_store.Delivery]:
    deliveries = []
    for _header, body in requests:
        event = parse_subscription(parse_envelope(body))
        deliveries.append(
            receiver_store.Delivery(
                WEBHOOK,
                int(time.time() * 1000),
                event.event_id,
                bench_events.EVENT_TYPE,
                event.state.subscription_id,
                "0123456789abcdef",
            )
        )
    return deliveries


def _store_path(path: Path, requests: Sequence[tuple[str, bytes]]) -> float:
    """CPU µs per delivery of Store.record_and_process, GROUP deliveries in flight."""
    events = [parse_subscription(parse_envelope(body)) for _header, body in requests]
    deliveries = _parsed(requests)
    bodies = [body for _header, body in requests]

    async def run() -> float:
        database = open_database(f"sqlite:///{path}")
        store = receiver_store.Store(database)
        began = time.process_time()
        for start in range(0, len(events), GROUP):
            group = range(start, min(start + GROUP, len(events)))
            outcomes = await asyncio.gather(
                *(store.record_and_process(deliveries[i], events[i], bodies[i]) for i in group)
            )
            assert set(outcomes) == {receiver_store.Outcome.APPLIED}, outcomes
        spent = time.process_time() - began
        await database.aclose()
        return spent * 1e6 / len(events)

    return asyncio.run(run())


def measure(deliveries: int = DELIVERIES, repeats: int = REPEATS) -> Floor:
    """Measure every step `repeats` times over `deliveries` distinct signed events."""
    subscriptions = bench_events.subscription_ids(256)
    secrets = [SigningSecret.of(SECRET)]
    verify_us, parse_us, writes_us, store_us = [], [], [], []
    with tempfile.TemporaryDirectory(prefix="receiver-floor-") as tmp:
        folder = Path(tmp)
        for _repeat in range(repeats):
            requests = _requests(deliveries, subscriptions)

            def verify_all(batch: Sequence[tuple[str, bytes]] = requests) -> int:
                now = datetime.now(UTC)  # the pool was signed a moment ago
                for header, body in batch:
                    verify(body, header, secrets, now=now, tolerance=TOLERANCE)
                return len(batch)

            def parse_all(batch: Sequence[tuple[str, bytes]] = requests) -> int:
                for _header, body in batch:
                    parse_subscription(parse_envelope(body))
                return len(batch)

            verify_us.append(_cpu_per_item(verify_all))
            parse_us.append(_cpu_per_item(parse_all))
            raw = _database(folder, subscriptions)
            writes_us.append(_raw_writes_per_delivery(raw, requests))
            full = _database(folder, subscriptions)
            store_us.append(_store_path(full, _requests(deliveries, subscriptions)))
    steps = [
        Step("verify", "`signing.verify`: parse the header, HMAC-SHA256, compare", verify_us),
        Step("parse", "`parse_envelope` + `parse_subscription` (json.loads of 3 KB)", parse_us),
        Step(
            "durable writes",
            f"the receiver's 4 statements, 2 transactions per {GROUP} deliveries, raw sqlite3",
            writes_us,
        ),
    ]
    store = Step(
        "store path", f"`Store.record_and_process`, {GROUP} in flight (glue included)", store_us
    )
    return Floor(steps, store)


def _raw_writes_per_delivery(path: Path, requests: Sequence[tuple[str, bytes]]) -> float:
    events = [parse_subscription(parse_envelope(body)) for _header, body in requests]
    deliveries = _parsed(requests)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    tx = Transaction(connection, "sqlite")
    began = time.process_time()
    for start in range(0, len(events), GROUP):
        group = range(start, min(start + GROUP, len(events)))
        connection.execute("PRAGMA synchronous = NORMAL")
        connection.execute("BEGIN IMMEDIATE")
        ids = [
            receiver_store._insert_delivery(tx, deliveries[i], "received", None).get()
            for i in group
        ]
        connection.execute("COMMIT")
        connection.execute("PRAGMA synchronous = FULL")
        connection.execute("BEGIN IMMEDIATE")
        for i, delivery_id in zip(group, ids, strict=True):
            outcome = receiver_store._apply_event(tx, WEBHOOK, events[i], 0)
            assert outcome is receiver_store.Outcome.APPLIED, outcome
            tx.execute(
                "UPDATE deliveries SET outcome = ?, status_code = ?, payload = ? WHERE id = ?",
                (outcome.value, outcome.status_code, None, delivery_id),
            )
        connection.execute("COMMIT")
    spent = time.process_time() - began
    connection.close()
    return spent * 1e6 / len(events)


def table(floor: Floor) -> list[list[str]]:
    """Rows of µs per delivery: the median over the repeats, their minimum and maximum."""

    def row(step: Step) -> list[str]:
        return [step.name, step.what, spread_text(Spread.of(step.micros), 1)]

    skipped = "what no receiver keeping the design's promises can skip"
    return [
        *(row(step) for step in floor.steps),
        ["sum", skipped, f"{floor.mandatory:.1f}"],
        row(floor.store),
    ]


def main() -> None:
    floor = measure()
    print(markdown_table(["step", "what", "CPU µs per delivery"], table(floor)))


if __name__ == "__main__":
    main()
