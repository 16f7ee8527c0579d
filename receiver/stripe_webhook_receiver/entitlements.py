"""Which subscriptions grant access, and so which entitlements a subscriber has.

A subscription grants access while its status is `active` or `trialing`, and also while it is
`past_due`: Stripe is still retrying the payment then, and cutting access at the first failed
charge would punish a customer whose card merely expired (the same grace RevenueCat gives on
billing issues). `unpaid`, `canceled`, `incomplete`, `incomplete_expired` and `paused` grant
nothing. In every case access ends with the current period, or at `ended_at` when the
subscription ended before it (an immediate cancellation, `customer.subscription.deleted`): a
subscription whose period has ended grants nothing whatever its last known status, since a
renewal would have sent an event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from stripe_webhook_receiver.events import SubscriptionState
from stripe_webhook_receiver.store import SubscriptionRow

ACCESS_STATUSES = frozenset({"active", "trialing", "past_due"})


def access_end(state: SubscriptionState) -> int | None:
    """Return when the subscription's access ends: the period's end, or `ended_at` if sooner."""
    ends = [t for t in (state.current_period_end, state.ended_at) if t is not None]
    return min(ends) if ends else None


def grants_access(row: SubscriptionRow, now: int) -> bool:
    """Return whether the subscription grants access at `now` (Unix seconds)."""
    end = access_end(row.state)
    return row.state.status in ACCESS_STATUSES and end is not None and now < end


def active_entitlements(
    rows: Iterable[SubscriptionRow], mapping: Mapping[str, tuple[str, ...]], now: int
) -> dict[str, SubscriptionRow]:
    """Return, per entitlement granted at `now`, the subscription that grants it longest."""
    granted: dict[str, SubscriptionRow] = {}
    for row in rows:
        if not grants_access(row, now) or row.state.product_id is None:
            continue
        for name, products in mapping.items():
            if row.state.product_id not in products:
                continue
            best = granted.get(name)
            if best is None or _end(best) < _end(row):
                granted[name] = row
    return granted


def _end(row: SubscriptionRow) -> int:
    return access_end(row.state) or 0
