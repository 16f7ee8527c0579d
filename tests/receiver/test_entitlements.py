"""Which statuses grant access, and the subscriber document built from subscriptions."""

from __future__ import annotations

from dataclasses import replace

import pytest

from stripe_webhook_receiver.entitlements import access_end, active_entitlements, grants_access
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


def test_access_ends_at_ended_at_when_the_subscription_ended_before_its_period() -> None:
    # Only statuses that grant access can tell when access ends; a canceled one grants none.
    ended = row(ended_at=NOW + 10)
    assert access_end(ended.state) == NOW + 10
    assert grants_access(ended, NOW + 9) is True
    assert grants_access(ended, NOW + 10) is False
    assert access_end(row(ended_at=NOW + 500).state) == NOW + 100
    assert access_end(row(current_period_end=None).state) is None


def test_an_immediate_cancellation_ends_the_entitlement_and_shows_when() -> None:
    canceled = row(status="canceled", canceled_at=NOW - 20, ended_at=NOW - 20)
    document = subscriber_document(
        "u1", NOW * 1000, [canceled], {"premium": ("prod_premium",)}, NOW
    )
    subscriber = document["subscriber"]
    assert subscriber["entitlements"] == {}
    shown = subscriber["subscriptions"]["prod_premium"]
    assert shown["status"] == "canceled"
    assert shown["expires_date"] == rfc3339(NOW - 20)
    assert shown["ended_at"] == rfc3339(NOW - 20)
    assert shown["unsubscribe_detected_at"] == rfc3339(NOW - 20)
    # The same subscription still running shows its period's end and no end yet.
    running = subscriber_document("u1", None, [row()], {"premium": ("prod_premium",)}, NOW)
    assert running["subscriber"]["subscriptions"]["prod_premium"]["expires_date"] == rfc3339(
        NOW + 100
    )
    assert running["subscriber"]["subscriptions"]["prod_premium"]["ended_at"] is None
