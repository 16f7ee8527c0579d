"""An immediate cancellation (`DELETE /v1/subscriptions/{id}`) sends only
`customer.subscription.deleted`: it reaches the subscriber's state through a webhook that
enabled it, and the receiver refuses it with 400 on a webhook that did not (Stripe sends it
none; a forged or misrouted one is refused, saying which types are accepted)."""

from __future__ import annotations

import time

import httpx
import pytest

from devstack.processes import poll
from devstack.project.receiver_process import FedReceiver
from devstack.project.recovery.stage import DELETED, RecoveryStage
from devstack.project.rotation.traffic import UPDATED
from devstack.project.scene import Scene
from stripe_webhook_operator import constants as c
from stripe_webhook_operator.event_signing import signature_header
from stripe_webhook_operator.secret_value import SecretValue

pytestmark = pytest.mark.integration


def subscription_state(stage: RecoveryStage, app_user_id: str, subscription: str) -> dict:
    answer = httpx.get(
        f"{stage.receiver.url}/v1/subscribers/{app_user_id}",
        headers={"Authorization": f"Bearer {stage.receipts_key()}"},
        timeout=10,
    )
    answer.raise_for_status()
    for item in answer.json()["subscriber"]["subscriptions"].values():
        if item["store_transaction_id"] == subscription:
            return dict(item)
    return {}


def test_immediate_cancellation_reaches_the_state_only_where_deleted_is_enabled(
    scene: Scene, receiver: FedReceiver
) -> None:
    cancels = RecoveryStage(scene, receiver, "cancels", types=(UPDATED, DELETED))
    updates = RecoveryStage(scene, receiver, "updates")
    cancels.start_operator()
    cancels.create()
    updates.create()
    (subscription,) = cancels.subscribe(1)
    updates.register("user-0", subscription)
    cancels.change(1)
    for stage in (cancels, updates):
        poll(
            f"{stage.webhook} holding the subscription active",
            lambda stage=stage: (
                subscription_state(stage, "user-0", subscription).get("status") == "active"
            ),
        )

    scene.client().v1.subscriptions.cancel(subscription)
    state = poll(
        "the cancellation in the subscriber's state",
        lambda: (
            (s := subscription_state(cancels, "user-0", subscription)).get("status") == "canceled"
            and s
        ),
    )
    assert state["ended_at"] is not None
    assert state["expires_date"] == state["ended_at"]
    deliveries = cancels.settle()

    # Stripe sent the `.deleted` event to the endpoint that wants it, and to no other.
    (deleted,) = [e for e in scene.stripe.event_log(scene.api_key) if e["type"] == DELETED]
    endpoints = {
        name: str(stage.body()["status"]["endpointId"])
        for name, stage in (("cancels", cancels), ("updates", updates))
    }
    assert set(deleted["deliveries"]) == {endpoints["cancels"]}
    assert [a["status"] for a in deliveries if a["event"] == deleted["id"]] == [200]
    assert subscription_state(updates, "user-0", subscription)["status"] == "active"

    # The same event, signed for the webhook that did not enable it, is refused with 400.
    body = httpx.get(
        f"{scene.stripe.base_url}/v1/events/{deleted['id']}", auth=(scene.api_key, ""), timeout=10
    ).content
    secret = SecretValue(scene.secret(updates.secret_name)[c.SECRET_KEY_SIGNING])
    refused = httpx.post(
        f"{receiver.url}/webhooks/{updates.webhook}",
        content=body,
        headers={
            "Stripe-Signature": signature_header(body, secret, int(time.time())),
            "Content-Type": "application/json",
        },
        timeout=10,
    )
    assert refused.status_code == 400, refused.text
    assert UPDATED in refused.json()["error"]["message"]
    assert subscription_state(updates, "user-0", subscription)["status"] == "active"

    books = cancels.books()
    assert books.problems() == {}
    assert deleted["id"] in books.emitted
