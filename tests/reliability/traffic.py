"""Real Stripe traffic to a real receiver: an app (emulator account, endpoint, secrets
directory in the kubelet's layout, receipts for a few subscriptions), a background stream of
subscription updates (each one a `customer.subscription.updated` event the emulator delivers
and retries), and the count, from the receiver's own tables, of events lost or applied twice."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg

from devstack.project.receiver_process import ReceiverProcess
from devstack.stripe_emulator.fixtures import StripeTarget
from tests.receiver.layout import project, webhook_file

WEBHOOK = "reliability/app"
RECEIPTS_KEY = "rk_reliability_app_key_0123456789"
SUBSCRIPTIONS = 3
EVENT_TYPE = "customer.subscription.updated"


@dataclass
class App:
    """One app's Stripe account and endpoint, pointed at `receiver`."""

    stripe: StripeTarget
    api_key: str
    receiver: ReceiverProcess
    secrets_dir: Path
    database_url: str
    endpoint_id: str = ""
    secret: str = field(default="", repr=False)
    subscriptions: list[str] = field(default_factory=list)

    def files(self) -> dict[str, bytes]:
        name, content = webhook_file(
            WEBHOOK, [(self.secret, None)], RECEIPTS_KEY, endpoint_id=self.endpoint_id
        )
        return {name: content}

    def set_up(self) -> App:
        """Create the endpoint and the subscriptions, project the secret, register receipts
        (the receiver must be running)."""
        client = self.stripe.client(self.api_key)
        endpoint = client.v1.webhook_endpoints.create(
            {"url": f"{self.receiver.url}/webhooks/{WEBHOOK}", "enabled_events": [EVENT_TYPE]}
        )
        self.endpoint_id, self.secret = endpoint.id, str(endpoint.secret)
        project(self.secrets_dir, self.files())
        deadline = time.monotonic() + 20
        while httpx.get(f"{self.receiver.url}/readyz/webhooks/{WEBHOOK}").status_code != 200:
            assert time.monotonic() < deadline, "the receiver never loaded the webhook file"
            time.sleep(0.05)
        for i in range(SUBSCRIPTIONS):
            subscription = self.stripe.create_subscription(self.api_key)
            self.subscriptions.append(subscription.id)
            httpx.post(
                f"{self.receiver.url}/v1/receipts",
                json={"app_user_id": f"user-{i}", "fetch_token": subscription.id},
                headers={"Authorization": f"Bearer {RECEIPTS_KEY}"},
                timeout=30,
            ).raise_for_status()
        return self

    def event_ids(self) -> set[str]:
        """Every subscription-updated event the account has sent."""
        client = self.stripe.client(self.api_key)
        page = client.v1.events.list({"type": EVENT_TYPE, "limit": 100})
        return {event.id for event in page.auto_paging_iter()}


class UpdateStream:
    """Update the app's subscriptions `count` times, `rate` per second, in a thread; `at(n,
    action)` runs `action` (in the stream's thread) right after the n-th update."""

    def __init__(self, app: App, count: int, rate: float = 10.0) -> None:
        self.app = app
        self.count = count
        self.rate = rate
        self.sent = 0
        self.errors: list[str] = []
        self._actions: dict[int, Callable[[], None]] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._client = app.stripe.client(app.api_key)

    def at(self, n: int, action: Callable[[], None]) -> UpdateStream:
        self._actions[n] = action
        return self

    def start(self) -> UpdateStream:
        self._thread.start()
        return self

    def update_one(self) -> None:
        """Send one more update (from the stream's thread, inside an action)."""
        subscriptions = self.app.subscriptions
        n = self.sent + 1
        self._client.v1.subscriptions.update(
            subscriptions[n % len(subscriptions)], {"metadata": {"n": str(n)}}
        )
        self.sent = n

    def _run(self) -> None:
        for n in range(1, self.count + 1):
            try:
                self.update_one()
                action = self._actions.get(n)
                if action is not None:
                    action()
            except Exception as exc:  # reported by join(), not lost in the thread
                self.errors.append(f"update {n}: {exc!r}")
            time.sleep(1.0 / self.rate)

    def join(self, timeout: float = 120.0) -> None:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the update stream did not finish"
        assert not self.errors, self.errors


@dataclass(frozen=True)
class Tally:
    """Per event: never processed (`lost`) or processed more than once (`twice`)."""

    sent: int
    lost: list[str]
    twice: list[str]


def _rows(database_url: str, query: str) -> list[tuple[Any, ...]]:
    if database_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as connection:
            return list(connection.execute(query).fetchall())
    with psycopg.connect(database_url) as connection:
        return list(connection.execute(query).fetchall())


def tally(app: App) -> Tally:
    """Compare the events Stripe sent with what the receiver's tables say it did."""
    sent = app.event_ids()
    processed = {
        row[0]
        for row in _rows(
            app.database_url,
            f"SELECT event_id FROM processed_events WHERE webhook = '{WEBHOOK}'",
        )
    }
    applied = _rows(
        app.database_url,
        "SELECT event_id, COUNT(*) FROM deliveries WHERE outcome IN ('applied', 'stale', "
        f"'replayed_applied', 'replayed_stale') AND webhook = '{WEBHOOK}' GROUP BY event_id",
    )
    return Tally(
        sent=len(sent),
        lost=sorted(sent - processed),
        twice=sorted(str(event) for event, times in applied if times > 1),
    )
