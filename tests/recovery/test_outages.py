"""Gaps the operator finds by itself, recovered with no admin: the receiver down for longer
than Stripe retries, the endpoint disabled by Stripe and re-enabled by the operator, and
subscription changes while a new webhook's endpoint waits disabled for its secret to reach
the receiver. Each is counted from the emulator's own event log against the receiver's
tables: every event applied once, none lost."""

from __future__ import annotations

import pytest

from devstack.processes import poll
from devstack.project.objects import condition
from devstack.project.recovery.stage import RecoveryStage
from stripe_webhook_operator import constants as c
from stripe_webhook_operator.gaps import DELIVERY_FAILED, DISABLED_BY_STRIPE, NOT_YET_ENABLED

pytestmark = pytest.mark.integration

SUBSCRIBERS = 3
CHANGES = 30


def assert_balanced(stage: RecoveryStage, created: int) -> None:
    """Once recovery is done, each of the `created` changes was applied once, none lost."""
    stage.settle()
    stage.wait_balanced()
    stage.wait_closed()
    books = stage.books()
    print(f"{stage.webhook}: {books.summary()}")
    assert len(books.emitted) == created
    assert books.problems() == {}
    assert books.beyond_retention == []


def test_receiver_down_longer_than_stripe_retries_then_back(stage: RecoveryStage) -> None:
    stage.start_operator()
    stage.create()
    stage.subscribe(SUBSCRIBERS)
    stage.change(5)
    stage.settle()

    stage.receiver.stop_server()
    stage.change(CHANGES)
    # Stripe gives up on every change made meanwhile: each delivery failed after its retries.
    endpoint = str(stage.body()["status"]["endpointId"])
    poll(
        "Stripe giving up on the changes made while the receiver was down",
        lambda: (
            [e["deliveries"].get(endpoint) for e in stage.updates()[-CHANGES:]]
            == ["failed"] * CHANGES
        ),
    )
    gap = stage.wait_for_gap(DELIVERY_FAILED)
    assert gap["from"]
    stage.receiver.start()

    assert_balanced(stage, CHANGES + 5)
    assert stage.recovery()["eventsRecovered"] >= CHANGES


def test_endpoint_disabled_by_stripe_then_re_enabled_by_the_operator(
    stage: RecoveryStage,
) -> None:
    stage.start_operator()
    stage.create()
    stage.subscribe(SUBSCRIBERS)
    endpoint = str(stage.body()["status"]["endpointId"])
    stage.change(5)

    stage.scene.stripe.disable_endpoint(endpoint)
    # Changes while disabled: Stripe never sends them, not even once the endpoint is back.
    stage.change(CHANGES)
    stage.wait_for_gap(DISABLED_BY_STRIPE)
    client = stage.scene.client()
    poll(
        "the operator re-enabling the endpoint",
        lambda: client.v1.webhook_endpoints.retrieve(endpoint).status == "enabled",
        timeout=60,
    )
    stage.change(5)
    unsent = [
        e
        for e in stage.scene.stripe.event_log(stage.scene.api_key)
        if e["type"] == "customer.subscription.updated" and endpoint not in e["deliveries"]
    ]
    assert unsent, "no change was made while the endpoint was disabled"

    assert_balanced(stage, CHANGES + 10)


def test_changes_while_a_new_webhook_waits_for_its_secret_to_propagate(
    stage: RecoveryStage,
) -> None:
    stage.start_operator()
    # Subscribers exist before the webhook does; their receipts come once the receiver knows it.
    subscriptions = [
        str(stage.scene.stripe.create_subscription(stage.scene.api_key, product_name=f"P{n}").id)
        for n in range(SUBSCRIBERS)
    ]
    stage.subscription_ids.extend(subscriptions)
    stage.receiver.hold_back()
    stage.create(ready=False)
    poll(
        "the new endpoint waiting disabled for the receiver",
        lambda: (
            condition(stage.body(), c.CONDITION_SECRET_PROPAGATED).get("reason")
            == "WaitingForReceiver"
            and [e.status for e in stage.scene.endpoints()] == ["disabled"]
        ),
        timeout=60,
    )
    stage.change(CHANGES)
    # The endpoint was disabled the whole time: Stripe sent none of those changes.
    assert stage.scene.stripe.deliveries(stage.scene.api_key) == []
    gap = stage.wait_for_gap(NOT_YET_ENABLED)
    assert "to" not in gap  # still open: the endpoint does not deliver yet

    stage.receiver.release()
    poll(
        "the endpoint enabled once the receiver holds the secret",
        lambda: {e.status for e in stage.scene.endpoints()} == {"enabled"},
        timeout=60,
    )
    for n, subscription in enumerate(subscriptions):
        stage.register(f"user-{n}", subscription)
    stage.change(5)

    assert_balanced(stage, CHANGES + 5)
