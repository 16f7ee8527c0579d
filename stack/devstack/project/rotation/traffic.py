"""Steady subscription traffic through Stripe: subscriptions with receipts at the receiver,
then a background thread updating them at a bounded rate, each update one
`customer.subscription.updated` event."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import stripe

UPDATED = "customer.subscription.updated"


@dataclass(frozen=True)
class Subscribers:
    """Subscriptions of one Stripe account, each registered at the receiver for its app."""

    subscription_ids: tuple[str, ...]


def enrol_subscribers(
    stripe_target: Any, api_key: str, receiver_url: str, receipts_key: str, count: int
) -> Subscribers:
    """Create `count` subscriptions and register a receipt for each at the receiver, so that
    every update of them is applied rather than answered `receipt_not_found`."""
    ids = []
    for index in range(count):
        subscription = stripe_target.create_subscription(api_key, product_name=f"Plan {index}")
        answer = httpx.post(
            f"{receiver_url}/v1/receipts",
            headers={"Authorization": f"Bearer {receipts_key}"},
            json={"app_user_id": f"user-{index}", "fetch_token": subscription.id},
            timeout=10,
        )
        answer.raise_for_status()
        ids.append(str(subscription.id))
    return Subscribers(tuple(ids))


@dataclass
class SubscriptionTraffic:
    """Updates the subscriptions round-robin at `rate` per second from a thread, until
    stopped or until `max_seconds` or `max_updates` is reached, whichever comes first."""

    client: stripe.StripeClient
    subscribers: Subscribers
    rate: float = 8.0
    max_seconds: float = 120.0
    max_updates: int = 2000
    sent: int = 0
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> SubscriptionTraffic:
        self._thread = threading.Thread(target=self._run, name="subscription-traffic", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> int:
        """Stop sending and return how many updates Stripe accepted."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        return self.sent

    def wait_for(self, updates: int, timeout: float = 30.0) -> None:
        """Block until at least `updates` more updates went out (the stream is flowing)."""
        target = self.sent + updates
        deadline = time.monotonic() + timeout
        while self.sent < target:
            if self.errors or time.monotonic() > deadline:
                raise AssertionError(f"traffic stalled at {self.sent} updates: {self.errors}")
            time.sleep(0.05)

    def _run(self) -> None:
        started = time.monotonic()
        due = started
        ids = self.subscribers.subscription_ids
        while not self._stop.is_set() and self.sent < self.max_updates:
            now = time.monotonic()
            if now - started > self.max_seconds:
                break
            if now < due:
                self._stop.wait(due - now)
                continue
            # A slow answer delays the next update instead of bunching the ones after it.
            due = max(due + 1 / self.rate, now)
            subscription_id = ids[self.sent % len(ids)]
            try:
                self.client.v1.subscriptions.update(
                    subscription_id, params={"metadata": {"sequence": str(self.sent)}}
                )
            except stripe.StripeError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc.user_message or exc}")
                if len(self.errors) > 20:
                    break
                continue
            self.sent += 1


def emitted_event_ids(client: stripe.StripeClient) -> set[str]:
    """Return the ids of every `customer.subscription.updated` event of the account."""
    ids: set[str] = set()
    params: dict[str, Any] = {"type": UPDATED, "limit": 100}
    for _page in range(1000):
        page = client.v1.events.list(params=params)  # type: ignore[arg-type]
        ids.update(str(event.id) for event in page.data)
        if not page.has_more or not page.data:
            return ids
        params["starting_after"] = page.data[-1].id
    raise AssertionError("more than 100,000 events: the traffic was not bounded")
