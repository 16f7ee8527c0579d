"""The stage of a recovery scenario on the local stack: one StripeWebhook served by the real
operator (recovery on, its loop quick) and the real receiver (fed by the Secret projector,
SQLite in its work directory), subscribers registered at the receiver, bursts of subscription
changes through Stripe, the receiver's database copied and restored, and the books
(books.py) kept from the emulator's own event log."""

from __future__ import annotations

import shutil
import sqlite3
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import httpx

from devstack.processes import poll
from devstack.project.objects import condition, webhook_manifest
from devstack.project.operator_process import OperatorProcess
from devstack.project.receiver_process import FedReceiver
from devstack.project.recovery.books import Books, balance
from devstack.project.rotation.run import operator_flags
from devstack.project.rotation.traffic import UPDATED, enrol_subscribers
from devstack.project.scene import Scene, ready_webhook
from stripe_webhook_operator import constants as c

# The operator's recovery loop on the local stack: a round every second, a failed gap retried
# after half a second (doubling), instead of production's 5 minutes and 30 seconds.
QUICK_RECOVERY: Final = ("--recovery-interval=1s", "--recovery-retry=500ms")
DELETED: Final = "customer.subscription.deleted"


def copy_database(source: Path, target: Path) -> None:
    """Copy the SQLite database `source` to `target` whole, as a backup tool would (SQLite's
    online backup: consistent even in WAL mode)."""
    target.unlink(missing_ok=True)
    with closing(sqlite3.connect(source)) as origin, closing(sqlite3.connect(target)) as copy:
        origin.backup(copy)


@dataclass
class RecoveryStage:
    """One webhook `name` of `scene`, delivered to `receiver`; `types` its enabled events."""

    scene: Scene
    receiver: FedReceiver
    name: str
    types: tuple[str, ...] = (UPDATED,)
    operators: list[OperatorProcess] = field(default_factory=list)
    subscription_ids: list[str] = field(default_factory=list)
    changes: int = 0

    @property
    def webhook(self) -> str:
        """The receiver's name of the webhook: `namespace/name`."""
        return f"{self.scene.namespace}/{self.name}"

    @property
    def secret_name(self) -> str:
        return f"{self.name}{c.SECRET_NAME_SUFFIX}"

    # --- the operator and the webhook -------------------------------------------------

    def start_operator(self, *extra: str, wait_ready: bool = True) -> OperatorProcess:
        """Start an operator that confirms with the receiver, points endpoints at it and
        recovers quickly."""
        operator = self.scene.start_operator(
            *operator_flags(self.receiver), *QUICK_RECOVERY, *extra, wait_ready=wait_ready
        )
        self.operators.append(operator)
        return operator

    def create(self, *, ready: bool = True, **spec: Any) -> None:
        """Apply the StripeWebhook (with `enabledEvents` = `types`) and, with `ready`, wait
        until it is Ready."""
        events = {"enabledEvents": list(self.types)} if self.types != (UPDATED,) else {}
        self.scene.apply(webhook_manifest(self.scene.namespace, self.name, **events, **spec))
        if ready:
            ready_webhook(self.scene, self.name, timeout=60)

    def body(self) -> dict[str, Any]:
        return self.scene.webhook(self.name)

    def recovery(self) -> dict[str, Any]:
        """`status.recovery` as the operator wrote it."""
        return dict((self.body().get("status") or {}).get("recovery") or {})

    def recovered(self) -> dict[str, Any]:
        """The `Recovered` condition (empty when there is none)."""
        return condition(self.body(), c.CONDITION_RECOVERED)

    def wait_for_gap(self, reason: str | None = None, timeout: float = 60.0) -> dict[str, Any]:
        """Wait until a gap (with `reason` among its reasons) is recorded; return it."""

        def found() -> dict[str, Any] | None:
            for gap in self.recovery().get("gaps") or []:
                if reason is None or reason in str(gap.get("reason", "")).split(","):
                    return dict(gap)
            return None

        return poll(f"{self.webhook} gap {reason or ''}", found, timeout)

    def wait_closed(self, timeout: float = 120.0) -> dict[str, Any]:
        """Wait until no gap is open and `Recovered` is True; return `status.recovery`."""

        def closed() -> dict[str, Any] | None:
            body = self.body()
            recovery = dict((body.get("status") or {}).get("recovery") or {})
            done = not recovery.get("gaps") and (
                condition(body, c.CONDITION_RECOVERED).get("status") == "True"
            )
            return recovery if done else None

        return poll(f"{self.webhook} without open gaps", closed, timeout)

    # --- subscribers and their changes -----------------------------------------------

    def receipts_key(self) -> str:
        return self.scene.secret(self.secret_name)[c.SECRET_KEY_RECEIPTS_API_KEY]

    def subscribe(self, count: int) -> list[str]:
        """Create `count` subscriptions and register each at the receiver (the webhook must
        be known to it)."""
        subscribers = enrol_subscribers(
            self.scene.stripe, self.scene.api_key, self.receiver.url, self.receipts_key(), count
        )
        self.subscription_ids.extend(subscribers.subscription_ids)
        return list(subscribers.subscription_ids)

    def register(self, app_user_id: str, subscription_id: str) -> None:
        """Register a receipt for `subscription_id` at the receiver (deliveries it stored as
        `receipt_not_found` are replayed then)."""
        answer = httpx.post(
            f"{self.receiver.url}/v1/receipts",
            headers={"Authorization": f"Bearer {self.receipts_key()}"},
            json={"app_user_id": app_user_id, "fetch_token": subscription_id},
            timeout=10,
        )
        answer.raise_for_status()

    def change(self, count: int, *, threads: int = 1) -> int:
        """Update the subscriptions `count` times round-robin (each one
        `customer.subscription.updated`), from `threads` threads; return how many Stripe
        accepted (all of them, or it raises)."""
        client = self.scene.client()
        ids = self.subscription_ids
        assert ids, "subscribe() first"
        # Numbered across calls: an update that changes nothing emits no event.
        first, self.changes = self.changes, self.changes + count

        def update(n: int) -> None:
            client.v1.subscriptions.update(ids[n % len(ids)], params={"metadata": {"n": str(n)}})

        if threads == 1:
            for n in range(first, first + count):
                update(n)
        else:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                list(pool.map(update, range(first, first + count)))
        return count

    def updates(self) -> list[dict[str, Any]]:
        """The account's `customer.subscription.updated` events from the emulator's own log,
        oldest first, each with its delivery state per endpoint (`deliveries`)."""
        log = self.scene.stripe.event_log(self.scene.api_key)
        return [event for event in log if event["type"] == UPDATED]

    def settle(self, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Wait until Stripe has no delivery in progress; return every attempt."""
        return self.scene.stripe.wait_until_settled(self.scene.api_key, timeout=timeout)

    # --- the receiver's database -----------------------------------------------------

    def backup(self, target: Path) -> None:
        """Copy the receiver's database to `target` (stop the receiver first: a backup of a
        quiet database, as a nightly one would be)."""
        copy_database(self.receiver.database, target)

    def restore(self, backup: Path) -> None:
        """Put the copy `backup` back as the receiver's database (the receiver stopped)."""
        database = self.receiver.database
        for suffix in ("-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        shutil.copyfile(backup, database)

    def applied_count(self) -> int:
        """How many event ids the receiver holds as processed for the webhook now."""
        with closing(sqlite3.connect(f"file:{self.receiver.database}?mode=ro", uri=True)) as db:
            row = db.execute(
                "SELECT COUNT(*) FROM processed_events WHERE webhook = ?", (self.webhook,)
            ).fetchone()
        return int(row[0])

    # --- the books -------------------------------------------------------------------

    def books(self, *, created_from: int | None = None) -> Books:
        """Count the webhook's books now (settle Stripe's deliveries first)."""
        return balance(
            self.scene.stripe,
            self.scene.api_key,
            self.receiver.database,
            self.webhook,
            self.types,
            created_from=created_from,
        )

    def wait_balanced(self, *, created_from: int | None = None, timeout: float = 120.0) -> Books:
        """Wait until no recoverable event is lost (recovery still working meanwhile); return
        the books, which a scenario then checks whole."""
        latest: list[Books] = []

        def balanced() -> bool:
            latest[:] = [self.books(created_from=created_from)]
            return not latest[0].lost

        try:
            poll(f"{self.webhook}: every event applied", balanced, timeout)
        except AssertionError as exc:
            raise AssertionError(
                f"{exc}; books: {latest[0].problems() if latest else '?'}"
            ) from exc
        return latest[0]


def quiet_second() -> int:
    """Wait until the wall clock enters a new second and return it: events created from
    now on are stamped at it or later, those before at an earlier second."""
    now = time.time()
    time.sleep(1.0 - (now % 1.0) + 0.01)
    return int(time.time())
