"""End to end on the local stack: a subscription updated (or canceled at once) at the Stripe
emulator is delivered, signed, to the receiver and shows in the subscriber API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from devstack.processes import wait_until
from devstack.project.receiver_process import ReceiverProcess
from devstack.stripe_emulator.fixtures import StripeTarget
from stripe_webhook_receiver.subscribers import rfc3339
from tests.receiver.layout import project, webhook_file

pytestmark = pytest.mark.integration

UPDATED, DELETED = "customer.subscription.updated", "customer.subscription.deleted"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ReceiverProcess, Path]]:
    workdir = tmp_path_factory.mktemp("e2e")
    secrets_dir = workdir / "secrets"
    project(secrets_dir, {})
    process = ReceiverProcess(workdir, secrets_dir, f"sqlite:///{workdir}/r.db").start()
    yield process, secrets_dir
    process.stop()
    assert "Traceback" not in process.log()


def subscriber(url: str, user: str, auth: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = httpx.get(f"{url}/v1/subscribers/{user}", headers=auth).json()
    return document["subscriber"]


def _webhook(
    stripe_emulator: StripeTarget,
    receiver: tuple[ReceiverProcess, Path],
    api_key: str,
    name: str,
    endpoint_events: list[str],
    entry_events: list[str] | None,
    api_version: str | None = None,
) -> tuple[str, stripe.Subscription, str, str]:
    """An endpoint sending `endpoint_events`, a subscription, and the webhook's entry with
    `entry_events` (None: left out, as `.updated` alone); return the endpoint id, the
    subscription, its product and the app's receipts key (each app has a key of its own)."""
    process, secrets_dir = receiver
    params: dict[str, Any] = {
        "url": f"{process.url}/webhooks/e2e/{name}",
        "enabled_events": endpoint_events,
    }
    if api_version is not None:
        params["api_version"] = api_version
    endpoint = stripe_emulator.client(api_key).v1.webhook_endpoints.create(params=params)  # type: ignore[arg-type]
    assert endpoint.secret
    subscription = stripe_emulator.create_subscription(api_key, product_name=f"Premium {name}")
    product = subscription["items"]["data"][0]["price"]["product"]
    receipts_key = f"rk_end_to_end_{name}"
    filename, content = webhook_file(
        f"e2e/{name}",
        [(endpoint.secret, None)],
        receipts_key,
        endpoint_id=endpoint.id,
        entitlements={"premium": [product]},
        enabled_events=entry_events,
    )
    existing = {p.name: p.read_bytes() for p in secrets_dir.glob("*.json")}
    project(secrets_dir, {**existing, filename: content})
    wait_until(
        lambda: httpx.get(f"{process.url}/readyz/webhooks/e2e/{name}").status_code == 200,
        timeout=10,
        what="the webhook file loaded",
    )
    return endpoint.id, subscription, product, receipts_key


@pytest.mark.parametrize("api_version", ["2024-12-18.acacia", "2025-03-31.basil"])
def test_an_emulator_update_reaches_the_subscriber_api(
    stripe_emulator: StripeTarget, receiver: tuple[ReceiverProcess, Path], api_version: str
) -> None:
    process, _ = receiver
    api_key = stripe_emulator.new_api_key()
    client = stripe_emulator.client(api_key)
    name = api_version.split(".")[1]
    endpoint, subscription, product, receipts_key = _webhook(
        stripe_emulator, receiver, api_key, name, [UPDATED], None, api_version=api_version
    )
    auth = {"Authorization": f"Bearer {receipts_key}"}

    # An update before the app registered the receipt: answered 422, kept for a replay.
    client.v1.subscriptions.update(subscription.id, params={"metadata": {"step": "1"}})
    attempts = stripe_emulator.wait_for_deliveries(
        api_key, lambda found: any(a["status"] == 422 for a in found), endpoint=endpoint
    )
    assert all(a["event_type"] == UPDATED for a in attempts)

    user = f"user-{name}"
    registered = httpx.post(
        f"{process.url}/v1/receipts",
        json={"app_user_id": user, "fetch_token": subscription.id},
        headers=auth,
    )
    assert registered.status_code == 201
    replayed = registered.json()["subscriber"]
    assert replayed["subscriptions"][product]["status"] == "active"
    assert replayed["subscriptions"][product]["cancel_at_period_end"] is False
    assert set(replayed["entitlements"]) == {"premium"}

    client.v1.subscriptions.update(subscription.id, params={"cancel_at_period_end": True})
    wait_until(
        lambda: subscriber(process.url, user, auth)["subscriptions"][product][
            "cancel_at_period_end"
        ],
        timeout=20,
        what="the cancellation applied",
    )
    state = subscriber(process.url, user, auth)
    assert state["subscriptions"][product]["unsubscribe_detected_at"] is not None
    assert state["entitlements"]["premium"]["product_identifier"] == product
    # stripe-python speaks a version from basil on: the period is on the item.
    period_end = subscription.to_dict()["items"]["data"][0]["current_period_end"]
    assert state["subscriptions"][product]["expires_date"] == rfc3339(period_end)

    final = stripe_emulator.wait_for_deliveries(
        api_key, lambda found: any(a["status"] == 200 for a in found), endpoint=endpoint
    )
    assert {a["status"] for a in final} <= {200, 422}


def test_an_immediate_cancellation_reaches_the_subscriber_where_deleted_is_enabled(
    stripe_emulator: StripeTarget, receiver: tuple[ReceiverProcess, Path]
) -> None:
    process, _ = receiver
    api_key = stripe_emulator.new_api_key()
    both = [UPDATED, DELETED]
    endpoint, subscription, product, key = _webhook(
        stripe_emulator, receiver, api_key, "cancels", both, both
    )
    sub = subscription.id
    auth = {"Authorization": f"Bearer {key}"}
    registered = httpx.post(
        f"{process.url}/v1/receipts",
        json={"app_user_id": "user-cancels", "fetch_token": sub},
        headers=auth,
    )
    assert registered.status_code == 201
    assert set(registered.json()["subscriber"]["entitlements"]) == set()  # nothing applied yet

    stripe_emulator.client(api_key).v1.subscriptions.update(sub, params={"metadata": {"a": "1"}})
    wait_until(
        lambda: "premium" in subscriber(process.url, "user-cancels", auth)["entitlements"],
        timeout=20,
        what="the update applied",
    )
    canceled = stripe_emulator.client(api_key).v1.subscriptions.cancel(sub)
    wait_until(
        lambda: (
            subscriber(process.url, "user-cancels", auth)["subscriptions"][product]["status"]
            == "canceled"
        ),
        timeout=20,
        what="the cancellation applied",
    )
    state = subscriber(process.url, "user-cancels", auth)
    assert state["entitlements"] == {}
    assert state["subscriptions"][product]["ended_at"] == rfc3339(canceled.ended_at)
    assert state["subscriptions"][product]["expires_date"] == rfc3339(canceled.ended_at)
    attempts = stripe_emulator.wait_until_settled(api_key)
    deleted = [a for a in attempts if a["event_type"] == DELETED]
    assert [a["status"] for a in deleted] == [200]
    assert {a["endpoint"] for a in attempts} == {endpoint}


def test_a_cancellation_is_400_where_the_webhook_did_not_enable_deleted(
    stripe_emulator: StripeTarget, receiver: tuple[ReceiverProcess, Path]
) -> None:
    api_key = stripe_emulator.new_api_key()
    endpoint, subscription, _, _ = _webhook(
        stripe_emulator, receiver, api_key, "updatesonly", [UPDATED, DELETED], None
    )
    stripe_emulator.client(api_key).v1.subscriptions.cancel(subscription.id)
    attempts = stripe_emulator.wait_for_deliveries(
        api_key,
        lambda found: any(a["event_type"] == DELETED for a in found),
        endpoint=endpoint,
    )
    deleted = [a for a in attempts if a["event_type"] == DELETED]
    assert deleted[0]["status"] == 400
