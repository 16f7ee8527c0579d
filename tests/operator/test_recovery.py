"""Recovery on the local stack, the operator's side of it: a new endpoint that waited disabled
gets the events created meanwhile redelivered; one Events API listing serves every webhook of
an account; a delivery answered 5xx, or not at all, keeps its gap and is retried; a restart in
the middle of a gap forgets nothing (the gap is in status); what is older than the retention is
reported lost and the rest recovered; an unreadable request changes nothing but the condition.
The done-when scenarios, counted against the emulator's event log, are tests/recovery's."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.processes import poll
from devstack.project.objects import condition, webhook_manifest
from devstack.project.receiver_process import FedReceiver
from devstack.project.scene import Scene, ready_webhook
from stripe_webhook_operator import constants as c
from stripe_webhook_operator.times import rfc3339
from tests.operator.conftest import condition_reason

pytestmark = pytest.mark.integration

# Recovery rounds only when asked (a closed gap, a request) within these tests; retries soon.
QUICK_RECOVERY = ("--recovery-interval=1h", "--recovery-retry=1s")
LISTING = "GET /v1/events"


def start_operator(scene: Scene, receiver: FedReceiver, *extra: str) -> Any:
    return scene.start_operator(f"--receiver-url={receiver.url}", *QUICK_RECOVERY, *extra)


def received(receiver: FedReceiver, scene: Scene, name: str) -> dict[str, str]:
    """The receiver's recorded deliveries for webhook `name`: event id -> outcome."""
    with sqlite3.connect(receiver.database) as db:
        rows = db.execute(
            "SELECT event_id, outcome FROM deliveries WHERE webhook = ?",
            (f"{scene.namespace}/{name}",),
        ).fetchall()
    return {str(event): str(outcome) for event, outcome in rows}


def attempted_by_stripe(scene: Scene, event_id: str) -> list[Any]:
    return list(scene.stripe.deliveries(scene.api_key, event=event_id))


def subscription_change(scene: Scene) -> tuple[str, datetime]:
    """Change a new subscription once and let Stripe's deliveries settle; return the id of its
    `customer.subscription.updated` event and a moment a minute before it was created."""
    subscription = scene.stripe.create_subscription(scene.api_key)
    scene.client().v1.subscriptions.update(subscription.id, {"metadata": {"plan": "changed"}})

    def updated() -> tuple[str, datetime] | None:
        for row in reversed(scene.stripe.event_log(scene.api_key)):
            if row["type"] == c.SUBSCRIPTION_UPDATED and row["object"] == subscription.id:
                before = datetime.fromtimestamp(int(row["created"]), UTC) - timedelta(minutes=1)
                return str(row["id"]), before
        return None

    found = poll("the subscription's update event", updated)
    scene.stripe.wait_until_settled(scene.api_key)
    return found


def recovery(scene: Scene, name: str) -> dict[str, Any]:
    return dict((scene.webhook(name).get("status") or {}).get("recovery") or {})


def gaps_closed(scene: Scene, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until `name` has no gap left and says Recovered=True; return status.recovery."""

    def check() -> dict[str, Any] | None:
        body = scene.webhook(name)
        found = (body.get("status") or {}).get("recovery") or {}
        done = condition(body, c.CONDITION_RECOVERED).get("status") == "True"
        return found if done and not found.get("gaps") else None

    return poll(f"{name} recovered", check, timeout)


def request_recovery(scene: Scene, names: list[str], since: datetime, request: str) -> None:
    scene.kubectl(
        "annotate",
        "--overwrite",
        "swh",
        *names,
        "-n",
        scene.namespace,
        f"{c.ANNOTATION_RECOVER}={request}",
        f"{c.ANNOTATION_RECOVER_SINCE}={rfc3339(since)}",
    )


def url_of(receiver: FedReceiver, scene: Scene, name: str) -> str:
    return f"{receiver.url}/webhooks/{scene.namespace}/{name}"


def recovered_webhook(scene: Scene, receiver: FedReceiver, name: str = "shop") -> None:
    """Apply a webhook delivering to the receiver; wait until it is Ready with no gap left."""
    scene.apply(webhook_manifest(scene.namespace, name, url=url_of(receiver, scene, name)))
    ready_webhook(scene, name)
    gaps_closed(scene, name)


def test_events_created_while_the_new_endpoint_waited_disabled_are_redelivered(
    scene: Scene, receiver: FedReceiver
) -> None:
    start_operator(scene, receiver)
    receiver.hold_back()  # the receiver does not get the new secret: the endpoint waits
    scene.apply(webhook_manifest(scene.namespace, "shop", url=url_of(receiver, scene, "shop")))
    condition_reason(scene, "shop", "WaitingForReceiver", c.CONDITION_SECRET_PROPAGATED)
    (gap,) = recovery(scene, "shop")["gaps"]
    assert gap["reason"] == "NotYetEnabled"
    assert "to" not in gap
    missed, _ = subscription_change(scene)

    receiver.release()
    ready_webhook(scene, "shop")
    done = gaps_closed(scene, "shop")
    assert poll("the redelivery recorded", lambda: missed in received(receiver, scene, "shop"))
    # Stripe never tried: the endpoint was disabled when the event was created.
    assert attempted_by_stripe(scene, missed) == []
    # No receipt for that subscription yet: stored for replay, a definite answer.
    assert received(receiver, scene, "shop")[missed] == "receipt_not_found"
    assert done["eventsRecovered"] >= 1
    assert condition(scene.webhook("shop"), c.CONDITION_RECOVERED)["reason"] == "NoOpenGaps"


def test_one_listing_per_account_serves_every_webhook(scene: Scene, receiver: FedReceiver) -> None:
    names = ["app-0", "app-1", "app-2"]
    start_operator(scene, receiver)
    for name in names:
        recovered_webhook(scene, receiver, name)
    missed, since = subscription_change(scene)
    scene.stripe.reset_stats(scene.api_key)

    request_recovery(scene, names, since, "one-listing")
    for name in names:
        found = gaps_closed(scene, name)
        assert found["request"] == "one-listing"
        assert poll(f"{name} got it", lambda n=name: missed in received(receiver, scene, n))
    calls = scene.stripe.stats(scene.api_key)["calls"]
    # One listing for the three gaps, and at most one scan for failed deliveries beside it;
    # one listing per webhook would be three.
    assert 1 <= calls.get(LISTING, 0) <= 2, calls


def retried_twice(scene: Scene, name: str) -> dict[str, Any]:
    """Wait until the first gap of `name` has failed twice; return status.recovery."""

    def check() -> dict[str, Any] | None:
        found = recovery(scene, name)
        gaps = found.get("gaps") or []
        return found if gaps and gaps[0].get("attempts", 0) >= 2 else None

    return poll("the gap retried", check)


def test_a_5xx_answer_keeps_the_gap_and_it_is_retried(scene: Scene, receiver: FedReceiver) -> None:
    start_operator(scene, receiver)
    recovered_webhook(scene, receiver)
    missed, since = subscription_change(scene)
    # The receiver's database, locked by another writer: it answers 503 `unavailable`.
    lock = sqlite3.connect(receiver.database, isolation_level=None)
    lock.execute("BEGIN EXCLUSIVE")
    try:
        request_recovery(scene, ["shop"], since, "database-locked")
        found = retried_twice(scene, "shop")
        assert found["gaps"][0]["nextAttemptAt"]
        assert found["lastError"] == "the receiver answered 503"
        recovered = condition(scene.webhook("shop"), c.CONDITION_RECOVERED)
        assert recovered["reason"] == "RetryingGap"
        assert "503" in recovered["message"]
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    gaps_closed(scene, "shop")
    assert missed in received(receiver, scene, "shop")


def test_a_delivery_without_an_answer_keeps_the_gap_and_is_retried(
    scene: Scene, receiver: FedReceiver
) -> None:
    start_operator(scene, receiver)
    recovered_webhook(scene, receiver)
    missed, since = subscription_change(scene)
    receiver.stop_server()

    request_recovery(scene, ["shop"], since, "while-down")

    found = retried_twice(scene, "shop")
    assert found["gaps"][0]["nextAttemptAt"]
    # The 422 Stripe got for the event (no receipt yet) makes it a failed delivery too.
    assert "Requested" in found["gaps"][0]["reason"].split(",")
    assert "could not be reached" in found["lastError"]
    recovered = condition(scene.webhook("shop"), c.CONDITION_RECOVERED)
    assert recovered["reason"] == "RetryingGap"
    assert "could not be reached" in recovered["message"]

    receiver.start()
    gaps_closed(scene, "shop")
    assert missed in received(receiver, scene, "shop")


def test_a_restart_in_the_middle_of_a_gap_forgets_nothing(
    scene: Scene, receiver: FedReceiver
) -> None:
    first = start_operator(scene, receiver)
    recovered_webhook(scene, receiver)
    missed, since = subscription_change(scene)
    receiver.stop_server()
    request_recovery(scene, ["shop"], since, "before-restart")
    poll(
        "the gap tried once",
        lambda: (recovery(scene, "shop").get("gaps") or [{}])[0].get("attempts"),
    )
    first.kill()

    receiver.start()
    start_operator(scene, receiver)
    found = gaps_closed(scene, "shop")
    assert found["request"] == "before-restart"
    assert missed in received(receiver, scene, "shop")
    # The request was handled once: the second operator recorded no second gap for it.
    assert scene.event_reasons("shop").count("RecoveryRequested") == 1


def test_an_unreadable_since_is_reported_and_changes_nothing_else(
    scene: Scene, receiver: FedReceiver
) -> None:
    start_operator(scene, receiver)
    recovered_webhook(scene, receiver)
    scene.kubectl(
        "annotate",
        "--overwrite",
        "swh",
        "shop",
        "-n",
        scene.namespace,
        f"{c.ANNOTATION_RECOVER}=bad",
        f"{c.ANNOTATION_RECOVER_SINCE}=last tuesday",
    )
    body = condition_reason(scene, "shop", "InvalidRecoverRequest", c.CONDITION_RECOVERED)
    assert c.ANNOTATION_RECOVER_SINCE in condition(body, c.CONDITION_RECOVERED)["message"]
    assert "request" not in body["status"]["recovery"]
    assert not body["status"]["recovery"].get("gaps")
    assert "InvalidRecoverRequest" in scene.event_reasons("shop")


def test_what_is_older_than_the_retention_is_reported_lost_and_the_rest_recovered(
    scene: Scene, receiver: FedReceiver
) -> None:
    # A retention of two minutes stands in for Stripe's 30 days.
    operator = start_operator(scene, receiver, "--event-retention=2m")
    recovered_webhook(scene, receiver)
    missed, since = subscription_change(scene)
    request_recovery(scene, ["shop"], since - timedelta(minutes=10), "too-far-back")

    body = condition_reason(scene, "shop", "BeyondRetention", c.CONDITION_RECOVERED)
    (lost,) = body["status"]["recovery"]["lost"]
    assert lost["from"] == rfc3339(since - timedelta(minutes=10))
    assert lost["from"] in condition(body, c.CONDITION_RECOVERED)["message"]
    warning = poll(
        "the BeyondRetention Event",
        lambda: [e for e in scene.events("shop") if e["reason"] == "BeyondRetention"],
    )
    assert warning[0]["type"] == "Warning"
    assert lost["from"] in warning[0]["message"]
    # The part Stripe still keeps is recovered all the same.
    assert poll("the rest redelivered", lambda: not recovery(scene, "shop").get("gaps"))
    assert missed in received(receiver, scene, "shop")
    counter = (
        "stripe_webhook_operator_recovery_beyond_retention_total"
        f'{{namespace="{scene.namespace}",webhook="shop"}} 1.0'
    )
    assert counter in operator.metrics()

    # A new request acknowledges the loss.
    request_recovery(scene, ["shop"], since, "acknowledged")
    found = gaps_closed(scene, "shop")
    assert found["lost"] == []
