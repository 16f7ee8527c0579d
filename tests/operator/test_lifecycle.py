"""Create, update in place and delete (both policies) on the real API server and the Stripe
emulator, with the operator running as a subprocess."""

from __future__ import annotations

import json

import pytest

from devstack.processes import poll
from devstack.project.objects import condition, get_json, secret_data, webhook_manifest
from devstack.project.scene import Scene, ready_webhook
from stripe_webhook_operator import constants as c
from tests.operator.conftest import receiver_entry

pytestmark = pytest.mark.integration


def test_create_gives_one_enabled_endpoint_secret_and_receiver_entry(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(
        webhook_manifest(
            scene.namespace,
            "shop",
            url="https://hooks.example.com/webhooks/shop",
            metadata={"team": "billing"},
            entitlements={"premium": ["prod_1"]},
        )
    )
    body = ready_webhook(scene, "shop")
    status = body["status"]
    (endpoint,) = scene.endpoints()
    assert endpoint.id == status["endpointId"]
    assert endpoint.status == "enabled"
    assert endpoint.url == "https://hooks.example.com/webhooks/shop"
    assert endpoint.enabled_events == [c.SUBSCRIPTION_UPDATED]
    assert endpoint.metadata["team"] == "billing"
    assert endpoint.metadata[c.STRIPE_METADATA_UID] == body["metadata"]["uid"]
    assert endpoint.metadata[c.STRIPE_METADATA_CLUSTER] == scene.cluster_id
    assert status["secretVersion"] == 1
    assert condition(body, c.CONDITION_SYNCED)["status"] == "True"
    assert condition(body, c.CONDITION_SECRET_PROPAGATED)["reason"] == "NoReceiverConfigured"
    assert body["metadata"]["annotations"][c.ANNOTATION_ENDPOINT_ID] == endpoint.id

    secret = get_json(scene.kubectl, "secret", "shop-stripe-webhook", "-n", scene.namespace)
    data = secret_data(secret)
    assert data[c.SECRET_KEY_SIGNING].startswith("whsec_")
    assert data[c.SECRET_KEY_ENDPOINT_ID] == endpoint.id
    assert len(data[c.SECRET_KEY_RECEIPTS_API_KEY]) >= 32
    assert c.SECRET_KEY_PREVIOUS_SIGNING not in data
    assert secret["metadata"]["ownerReferences"][0]["uid"] == body["metadata"]["uid"]

    entry = receiver_entry(scene, "shop")
    assert entry is not None
    assert entry["webhook"] == f"{scene.namespace}/shop"
    assert entry["endpoint_id"] == endpoint.id
    assert entry["signing_secrets"] == [{"secret": data[c.SECRET_KEY_SIGNING], "not_after": None}]
    assert entry["entitlements"] == {"premium": ["prod_1"]}
    # No secret value ever reaches the resource itself.
    assert data[c.SECRET_KEY_SIGNING] not in json.dumps(body)


def test_update_in_place_keeps_endpoint_and_secret(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop", description="first"))
    first = ready_webhook(scene, "shop")
    secret_before = secret_data(
        get_json(scene.kubectl, "secret", "shop-stripe-webhook", "-n", scene.namespace)
    )
    scene.apply(
        webhook_manifest(
            scene.namespace,
            "shop",
            url="https://hooks.example.com/moved",
            description="second",
            metadata={"team": "growth"},
            disabled=True,
        )
    )

    def updated() -> object:
        (endpoint,) = scene.endpoints()
        return (
            endpoint
            if endpoint.url == "https://hooks.example.com/moved" and endpoint.status == "disabled"
            else None
        )

    endpoint = poll("in-place update", updated)
    assert endpoint.id == first["status"]["endpointId"]
    assert endpoint.description == "second"
    assert endpoint.metadata["team"] == "growth"
    secret_after = secret_data(
        get_json(scene.kubectl, "secret", "shop-stripe-webhook", "-n", scene.namespace)
    )
    assert secret_after == secret_before

    def status_follows() -> dict | None:
        body = get_json(scene.kubectl, "swh", "shop", "-n", scene.namespace)
        return body if body["status"].get("stripeStatus") == "disabled" else None

    body = poll("status follows", status_follows)
    assert body["status"]["secretVersion"] == 1
    assert body["status"]["url"] == "https://hooks.example.com/moved"


def test_delete_policy_delete_removes_endpoint_and_entry(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    ready_webhook(scene, "shop")
    scene.kubectl("delete", "swh", "shop", "-n", scene.namespace, "--timeout=30s")
    assert scene.endpoints() == []
    assert receiver_entry(scene, "shop") is None


def test_delete_policy_orphan_keeps_endpoint_and_secret(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop", deletionPolicy="Orphan"))
    body = ready_webhook(scene, "shop")
    scene.kubectl("delete", "swh", "shop", "-n", scene.namespace, "--timeout=30s")
    (endpoint,) = scene.endpoints()
    assert endpoint.id == body["status"]["endpointId"]
    assert c.STRIPE_METADATA_CLUSTER not in endpoint.metadata.to_dict()
    secret = get_json(scene.kubectl, "secret", "shop-stripe-webhook", "-n", scene.namespace)
    assert not secret["metadata"].get("ownerReferences")
    assert secret_data(secret)[c.SECRET_KEY_ENDPOINT_ID] == endpoint.id
    assert receiver_entry(scene, "shop") is None
