"""Building subscription events (`.updated`, `.deleted`) in either API shape, and signing
them."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from stripe_webhook_receiver.signing import sign

BASIL = "2025-03-31.basil"
ACACIA = "2024-12-18.acacia"
PERIOD = 30 * 86400


def subscription_event(
    subscription_id: str,
    *,
    status: str = "active",
    created: int | None = None,
    period_end: int | None = None,
    product: str = "prod_premium",
    price: str = "price_monthly",
    cancel_at_period_end: bool = False,
    canceled_at: int | None = None,
    ended_at: int | None = None,
    trial_end: int | None = None,
    api_version: str = BASIL,
    event_id: str | None = None,
    event_type: str = "customer.subscription.updated",
    pad_to: int = 0,
) -> dict[str, Any]:
    """A Stripe event as Stripe would send it, with the period where `api_version` puts it."""
    created = int(time.time()) if created is None else created
    period_end = created + PERIOD if period_end is None else period_end
    period = {"current_period_start": period_end - PERIOD, "current_period_end": period_end}
    item: dict[str, Any] = {
        "id": "si_" + subscription_id.removeprefix("sub_"),
        "object": "subscription_item",
        "price": {"id": price, "object": "price", "product": product, "unit_amount": 999},
        "quantity": 1,
    }
    subscription: dict[str, Any] = {
        "id": subscription_id,
        "object": "subscription",
        "customer": "cus_" + subscription_id.removeprefix("sub_"),
        "status": status,
        "cancel_at_period_end": cancel_at_period_end,
        "cancel_at": period_end if cancel_at_period_end else None,
        "canceled_at": canceled_at,
        "ended_at": ended_at,
        "trial_start": None if trial_end is None else trial_end - 14 * 86400,
        "trial_end": trial_end,
        "start_date": period_end - 3 * PERIOD,
        "items": {"object": "list", "data": [item], "has_more": False},
        "livemode": False,
    }
    if api_version >= "2025-03-31":
        item.update(period)
    else:
        subscription.update(period)
    event: dict[str, Any] = {
        "id": event_id or f"evt_{uuid.uuid4().hex}",
        "object": "event",
        "api_version": api_version,
        "created": created,
        "type": event_type,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "data": {"object": subscription, "previous_attributes": {"status": "trialing"}},
    }
    if pad_to:
        # Real events carry metadata and more; pad to a realistic size.
        size = len(json.dumps(event))
        subscription["metadata"] = {"padding": "x" * max(0, pad_to - size - 30)}
    return event


def deleted_event(subscription_id: str, *, ended_at: int, **fields: Any) -> dict[str, Any]:
    """A `customer.subscription.deleted` event: canceled at once, at `ended_at`.

    Stripe sends no `previous_attributes` with it; the period stays the one that was running."""
    event = subscription_event(
        subscription_id,
        status="canceled",
        canceled_at=ended_at,
        ended_at=ended_at,
        event_type="customer.subscription.deleted",
        **{"created": ended_at, **fields},
    )
    del event["data"]["previous_attributes"]
    return event


def encode(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def signed(
    event: dict[str, Any] | bytes, secrets: list[str], timestamp: int | None = None
) -> tuple[bytes, dict[str, str]]:
    """Return the body and headers of a delivery signed with each of `secrets`."""
    body = event if isinstance(event, bytes) else encode(event)
    stamp = int(time.time()) if timestamp is None else timestamp
    return body, {
        "Stripe-Signature": sign(body, secrets, stamp),
        "Content-Type": "application/json; charset=utf-8",
    }
