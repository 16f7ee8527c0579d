"""Drift: an endpoint disabled or deleted behind the operator's back is restored, in-place
fields are put back, and one list call per account serves every webhook of that account."""

from __future__ import annotations

import time

import pytest

from devstack.processes import poll
from devstack.project.objects import rotation_step, webhook_manifest
from devstack.project.scene import Scene, ready_webhook
from stripe_webhook_operator import constants as c
from tests.operator.conftest import receiver_entry

pytestmark = pytest.mark.integration


def test_endpoint_disabled_by_stripe_is_reported_and_re_enabled(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    endpoint_id = ready_webhook(scene, "shop")["status"]["endpointId"]
    scene.stripe.disable_endpoint(endpoint_id)

    def re_enabled() -> bool:
        endpoint = scene.client().v1.webhook_endpoints.retrieve(endpoint_id)
        return endpoint.status == "enabled"

    poll("endpoint re-enabled", re_enabled)
    reasons = poll(
        "Events posted",
        lambda: (r := scene.event_reasons("shop")) and "EndpointDisabledByStripe" in r and r,
    )
    assert "EndpointUpdated" in reasons
    body = ready_webhook(scene, "shop")
    assert body["status"]["endpointId"] == endpoint_id
    assert body["status"]["secretVersion"] == 1


def test_spec_disabled_endpoint_is_left_disabled(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop", disabled=True))
    body = ready_webhook(scene, "shop")
    endpoint = scene.client().v1.webhook_endpoints.retrieve(body["status"]["endpointId"])
    assert endpoint.status == "disabled"
    scene.stripe.reset_stats(scene.api_key)
    time.sleep(3)  # more than one drift interval: the operator must not flip it
    assert scene.client().v1.webhook_endpoints.retrieve(endpoint.id).status == "disabled"


def test_endpoint_deleted_in_dashboard_is_recreated_with_new_secret_version(
    scene: Scene,
) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    first = ready_webhook(scene, "shop")
    old_id = first["status"]["endpointId"]
    old_secret = scene.secret("shop-stripe-webhook")[c.SECRET_KEY_SIGNING]
    old_receipts = scene.secret("shop-stripe-webhook")[c.SECRET_KEY_RECEIPTS_API_KEY]
    scene.stripe.delete_endpoint_in_dashboard(old_id)

    def replaced() -> dict | None:
        body = scene.webhook("shop")
        status = body.get("status") or {}
        ok = status.get("endpointId") not in (None, old_id) and status.get("secretVersion") == 2
        return body if ok else None

    body = poll("endpoint recreated", replaced)
    ready_webhook(scene, "shop")
    (endpoint,) = scene.endpoints()
    assert endpoint.id == body["status"]["endpointId"]
    assert endpoint.status == "enabled"
    data = scene.secret("shop-stripe-webhook")
    assert data[c.SECRET_KEY_SIGNING] != old_secret
    assert data[c.SECRET_KEY_ENDPOINT_ID] == endpoint.id
    assert data[c.SECRET_KEY_RECEIPTS_API_KEY] == old_receipts
    assert "EndpointDeletedInStripe" in scene.event_reasons("shop")


def test_one_list_call_per_account_serves_every_webhook(scene: Scene) -> None:
    scene.start_operator()
    names = [f"app-{i}" for i in range(4)]
    for name in names:
        scene.apply(webhook_manifest(scene.namespace, name))
    for name in names:
        ready_webhook(scene, name)
    # Four writers of the receiver's aggregated Secret, one key each: none lost another's.
    for name in names:
        assert receiver_entry(scene, name) is not None
    scene.stripe.reset_stats(scene.api_key)
    window = 6.5  # three drift intervals of 2 s (+ up to 0.2 s jitter)
    time.sleep(window)
    calls = scene.stripe.stats(scene.api_key)["calls"]
    lists = calls.get("GET /v1/webhook_endpoints", 0)
    retrieves = calls.get("GET /v1/webhook_endpoints/{id}", 0)
    updates = calls.get("POST /v1/webhook_endpoints/{id}", 0)
    # Each of the 4 webhooks had about 3 drift passes: per-webhook calls would be ~12.
    assert 1 <= lists <= 5, calls
    assert retrieves == 0, calls
    assert updates == 0, calls


def test_in_place_field_changed_in_dashboard_is_put_back(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop", description="from the spec"))
    endpoint_id = ready_webhook(scene, "shop")["status"]["endpointId"]
    scene.client().v1.webhook_endpoints.update(
        endpoint_id, {"description": "edited by hand", "url": "https://elsewhere.example.com/x"}
    )

    def restored() -> bool:
        endpoint = scene.client().v1.webhook_endpoints.retrieve(endpoint_id)
        return endpoint.description == "from the spec" and endpoint.url.endswith(
            "/webhooks/" + scene.namespace + "/shop"
        )

    poll("fields put back", restored)


def test_orphan_sweep_deletes_endpoints_of_vanished_resources_of_this_cluster(
    scene: Scene,
) -> None:
    client = scene.client()

    def tagged(cluster: str) -> str:
        metadata = {
            c.STRIPE_METADATA_UID: "00000000-0000-0000-0000-000000000000",
            c.STRIPE_METADATA_NAMESPACE: scene.namespace,
            c.STRIPE_METADATA_NAME: "gone",
            c.STRIPE_METADATA_CLUSTER: cluster,
        }
        params = {
            "url": "https://gone.example.com/x",
            "enabled_events": [c.SUBSCRIPTION_UPDATED],
            "metadata": metadata,
        }
        return str(client.v1.webhook_endpoints.create(params).id)

    orphan = tagged(scene.cluster_id)
    other_cluster = tagged("another-cluster")
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    current = ready_webhook(scene, "shop")["status"]["endpointId"]
    poll(
        "orphan swept",
        lambda: {e.id for e in scene.endpoints()} == {current, other_cluster},
    )
    assert orphan not in {e.id for e in scene.endpoints()}


def test_lost_secret_is_replaced_by_a_new_endpoint_and_the_old_one_deleted(
    scene: Scene,
) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    old_id = ready_webhook(scene, "shop")["status"]["endpointId"]
    scene.kubectl("delete", "secret", "shop-stripe-webhook", "-n", scene.namespace)

    def replaced() -> bool:
        body = scene.webhook("shop")
        return (body.get("status") or {}).get("secretVersion") == 2 and rotation_step(
            body
        ) == "Idle"

    poll("secret replaced", replaced)
    (endpoint,) = scene.endpoints()
    assert endpoint.id != old_id
    assert scene.secret("shop-stripe-webhook")[c.SECRET_KEY_ENDPOINT_ID] == endpoint.id
