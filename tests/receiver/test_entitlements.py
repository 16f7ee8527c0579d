"""Which statuses grant access, and the subscriber document built from subscriptions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stripe_webhook_receiver.entitlements import active_entitlements, grants_access
from stripe_webhook_receiver.events import SubscriptionState
from stripe_webhook_receiver.store import SubscriptionRow
from stripe_webhook_receiver.subscribers import rfc3339, subscriber_document

NOW = 1_790_000_000
STATE = SubscriptionState(
    subscription_id="sub_1",
    customer="cus_1",
    status="active",
    product_id="prod_premium",
    price_id="price_1",
    current_period_start=NOW - 100,
    current_period_end=NOW + 100,
    cancel_at_period_end=False,
    cancel_at=None,
    canceled_at=None,
    trial_start=None,
    trial_end=None,
    start_date=NOW - 1000,
    livemode=False,
)


def row(**changes: object) -> SubscriptionRow:
    issues = changes.pop("billing_issues_since", None)
    return SubscriptionRow(replace(STATE, **changes), issues, NOW - 50, NOW)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "granted"),
    [
        ("active", True),
        ("trialing", True),
        ("past_due", True),
        ("unpaid", False),
        ("canceled", False),
        ("incomplete", False),
        ("incomplete_expired", False),
        ("paused", False),
        ("some_future_status", False),
    ],
)
def test_access_follows_the_status_within_the_period(status: str, granted: bool) -> None:
    assert grants_access(row(status=status), NOW) is granted
    assert grants_access(row(status=status, current_period_end=NOW), NOW) is False


def test_entitlements_map_products_and_pick_the_longest_subscription() -> None:
    mapping = {"premium": ("prod_premium", "prod_gold"), "extra": ("prod_extra",)}
    rows = [
        row(subscription_id="sub_a"),
        row(subscription_id="sub_b", product_id="prod_gold", current_period_end=NOW + 500),
        row(subscription_id="sub_c", product_id="prod_other"),
    ]
    granted = active_entitlements(rows, mapping, NOW)
    assert list(granted) == ["premium"]
    assert granted["premium"].state.subscription_id == "sub_b"


def test_the_document_has_revenuecats_shape() -> None:
    rows = [
        row(status="trialing", trial_end=NOW + 100),
        row(
            subscription_id="sub_2",
            product_id="prod_late",
            status="past_due",
            cancel_at_period_end=True,
            canceled_at=NOW - 5,
            billing_issues_since=NOW - 7,
        ),
    ]
    document = subscriber_document("u1", NOW * 1000, rows, {"premium": ("prod_premium",)}, NOW)
    subscriber = document["subscriber"]
    assert document["request_date"] == rfc3339(NOW)
    assert subscriber["original_app_user_id"] == "u1"
    trial = subscriber["subscriptions"]["prod_premium"]
    assert trial["period_type"] == "trial"
    assert trial["expires_date"] == rfc3339(NOW + 100)
    assert trial["purchase_date"] == rfc3339(NOW - 100)
    assert trial["store"] == "stripe"
    assert trial["unsubscribe_detected_at"] is None
    late = subscriber["subscriptions"]["prod_late"]
    assert late["period_type"] == "normal"
    assert late["unsubscribe_detected_at"] == rfc3339(NOW - 5)
    assert late["billing_issues_detected_at"] == rfc3339(NOW - 7)
    assert subscriber["entitlements"] == {
        "premium": {
            "expires_date": rfc3339(NOW + 100),
            "purchase_date": rfc3339(NOW - 100),
            "product_identifier": "prod_premium",
        }
    }
