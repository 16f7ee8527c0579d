"""Errors: a missing API key (and its Secret appearing), 429 bursts, Stripe's endpoint limit,
a Secret the operator does not own, and a deletion whose API key is gone."""

from __future__ import annotations

import re
import time

import pytest

from devstack.processes import poll
from devstack.project.objects import api_key_secret, try_get_json, webhook_manifest
from devstack.project.scene import Scene, ready_webhook
from stripe_webhook_operator import constants as c
from tests.operator.conftest import condition_reason

pytestmark = pytest.mark.integration


def test_api_key_missing_then_secret_appears_makes_it_ready(scene: Scene) -> None:
    # A drift interval far longer than the test: only the Secret watch can wake the webhook.
    scene.start_operator("--drift-interval=10m")
    manifest = webhook_manifest(scene.namespace, "shop")
    scene.apply(manifest.replace('"stripe-api-key"', '"late-key"'))
    body = condition_reason(scene, "shop", "ApiKeyMissing")
    assert "late-key" in body["status"]["conditions"][0]["message"]
    assert scene.endpoints() == []
    scene.apply(api_key_secret(scene.namespace, scene.api_key, name="late-key"))
    ready_webhook(scene, "shop", timeout=20)
    assert len(scene.endpoints()) == 1


def test_burst_of_429_is_retried_to_one_endpoint(scene: Scene) -> None:
    operator = scene.start_operator()
    scene.stripe.inject_fault(
        scene.api_key, status=429, count=4, path_prefix="/v1/webhook_endpoints", method="POST"
    )
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    ready_webhook(scene, "shop")
    assert len(scene.endpoints()) == 1
    assert scene.stripe.stats(scene.api_key)["faults_served"] == 4
    text = operator.metrics()
    pattern = r'stripe_webhook_operator_stripe_calls_total\{method="create",outcome="429"\} (\S+)'
    rejected = re.search(pattern, text)
    assert rejected is not None, text
    assert float(rejected.group(1)) == 4
    # A 429 is counted on its own, not among the other refusals.
    assert 'stripe_webhook_operator_stripe_calls_total{method="create",outcome="4xx"}' not in text
    assert scene.api_key not in text
    assert "whsec_" not in text
    assert scene.api_key not in operator.log()


def test_endpoint_limit_has_its_own_reason_and_no_hot_loop(scene: Scene) -> None:
    client = scene.client()
    for i in range(16):
        client.v1.webhook_endpoints.create(
            {"url": f"https://filler.example.com/{i}", "enabled_events": [c.SUBSCRIPTION_UPDATED]}
        )
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    body = condition_reason(scene, "shop", "EndpointLimitReached")
    ready = body["status"]["conditions"][0]
    assert ready["status"] == "False"
    assert "16" in ready["message"]
    assert "delete an unused webhook endpoint" in ready["message"]
    assert "EndpointLimitReached" in scene.event_reasons("shop")
    scene.stripe.reset_stats(scene.api_key)
    time.sleep(4)  # two drift intervals
    creates = scene.stripe.stats(scene.api_key)["calls"].get("POST /v1/webhook_endpoints", 0)
    assert creates <= 3
    # Freeing a slot lets the next pass succeed.
    client.v1.webhook_endpoints.delete(scene.endpoints()[-1].id)
    ready_webhook(scene, "shop")


def test_foreign_secret_is_never_overwritten(scene: Scene) -> None:
    scene.kubectl(
        "create",
        "secret",
        "generic",
        "shop-stripe-webhook",
        "-n",
        scene.namespace,
        "--from-literal=mine=untouched",
    )
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    body = condition_reason(scene, "shop", "SecretConflict")
    assert "spec.secretName" in body["status"]["conditions"][0]["message"]
    assert scene.endpoints() == []
    assert scene.secret("shop-stripe-webhook") == {"mine": "untouched"}


def test_deletion_without_api_key_is_blocked_until_force_delete(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    endpoint_id = ready_webhook(scene, "shop")["status"]["endpointId"]
    scene.kubectl("delete", "secret", "stripe-api-key", "-n", scene.namespace)
    scene.kubectl("delete", "swh", "shop", "-n", scene.namespace, "--wait=false")
    body = condition_reason(scene, "shop", "DeletionBlocked")
    assert c.ANNOTATION_FORCE_DELETE in body["status"]["conditions"][0]["message"]
    scene.kubectl(
        "annotate", "swh", "shop", "-n", scene.namespace, f"{c.ANNOTATION_FORCE_DELETE}=true"
    )
    poll(
        "resource released",
        lambda: try_get_json(scene.kubectl, "swh", "shop", "-n", scene.namespace) is None,
        timeout=40,
    )
    # Left in Stripe, as the Event said; the orphan sweep removes it once a key is back.
    assert [e.id for e in scene.endpoints()] == [endpoint_id]
