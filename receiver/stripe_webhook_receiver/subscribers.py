"""The subscriber document served by `GET /v1/subscribers/{app_user_id}`.

Its shape follows RevenueCat's subscriber response, so that apps written against it read it
unchanged: `subscriptions` keyed by product id and `entitlements` keyed by name, with times as
RFC 3339 UTC strings. Fields Stripe has and RevenueCat lacks (`status`, `price_id`,
`cancel_at_period_end`, ...) are added beside them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from stripe_webhook_receiver.entitlements import access_end, active_entitlements
from stripe_webhook_receiver.store import SubscriptionRow

STORE = "stripe"


def rfc3339(seconds: int | float | None) -> str | None:
    """Format Unix seconds as '2026-11-27T21:00:00Z' (None stays None)."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _subscription(row: SubscriptionRow) -> dict[str, Any]:
    state = row.state
    trial = state.status == "trialing"
    unsubscribed = state.cancel_at_period_end or state.status == "canceled"
    return {
        "expires_date": rfc3339(access_end(state)),
        "purchase_date": rfc3339(state.current_period_start),
        "original_purchase_date": rfc3339(state.start_date),
        "period_type": "trial" if trial else "normal",
        "store": STORE,
        "is_sandbox": not state.livemode,
        "unsubscribe_detected_at": rfc3339(state.canceled_at) if unsubscribed else None,
        "billing_issues_detected_at": rfc3339(row.billing_issues_since),
        "status": state.status,
        "cancel_at_period_end": state.cancel_at_period_end,
        "canceled_at": rfc3339(state.canceled_at),
        "ended_at": rfc3339(state.ended_at),
        "trial_end": rfc3339(state.trial_end),
        "price_id": state.price_id,
        "product_id": state.product_id,
        "store_transaction_id": state.subscription_id,
    }


def subscriber_document(
    app_user_id: str,
    first_seen_ms: int | None,
    rows: list[SubscriptionRow],
    entitlement_map: Mapping[str, tuple[str, ...]],
    now: float,
) -> dict[str, Any]:
    """Build the response body for one subscriber at `now` (Unix seconds)."""
    subscriptions: dict[str, dict[str, Any]] = {}
    # Two subscriptions to one product: the one that runs longest speaks for the product.
    for row in sorted(rows, key=lambda r: access_end(r.state) or 0):
        subscriptions[row.state.product_id or row.state.subscription_id] = _subscription(row)
    entitlements = {
        name: {
            "expires_date": rfc3339(access_end(row.state)),
            "purchase_date": rfc3339(row.state.current_period_start),
            "product_identifier": row.state.product_id,
        }
        for name, row in sorted(active_entitlements(rows, entitlement_map, int(now)).items())
    }
    return {
        "request_date": rfc3339(now),
        "request_date_ms": int(now * 1000),
        "subscriber": {
            "original_app_user_id": app_user_id,
            "first_seen": rfc3339(first_seen_ms / 1000 if first_seen_ms is not None else None),
            "subscriptions": subscriptions,
            "entitlements": entitlements,
            "non_subscriptions": {},
            "other_purchases": {},
            "management_url": None,
        },
    }
