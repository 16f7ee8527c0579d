"""A whole journey (create, deliver, register a receipt, rotate, deliver, delete) with the real
operator, receiver and Stripe emulator, then a scan of everything they showed: both logs, the
Kubernetes Events, every status seen, both /metrics pages. No secret used on the way (signing
secrets, the API key, receipts keys and their digests) may appear. On the way, deliveries
signed with another app's secret and replays outside the tolerance are refused."""

from __future__ import annotations

import hashlib
import json
import time
from typing import Any

import httpx
import pytest

from devstack.cluster.kubectl import Cluster
from devstack.processes import poll
from devstack.project.objects import rotation_step, try_get_json, webhook_manifest
from devstack.project.receiver_process import FedReceiver
from devstack.project.scene import RECEIVER_SECRET, Scene, ready_webhook
from stripe_webhook_operator import constants as c
from stripe_webhook_receiver.signing import sign
from tests.reliability.ledger import Ledger

pytestmark = pytest.mark.integration

APPS = ("shop", "other")


def delivered(scene: Scene, endpoint_id: str, nonce: str, subscription_id: str) -> list[Any]:
    """Update the subscription and wait until `endpoint_id` got a 2xx for that event."""
    scene.client().v1.subscriptions.update(subscription_id, {"metadata": {"nonce": nonce}})
    events = scene.client().v1.events.list({"limit": 1})
    event_id = events.data[0].id
    return scene.stripe.wait_for_deliveries(
        scene.api_key,
        lambda found: any(a["event"] == event_id and a["status"] == 200 for a in found),
        endpoint=endpoint_id,
        timeout=30,
    )


def test_a_whole_journey_shows_no_secret_anywhere(
    scene: Scene, kube_cluster: Cluster, tmp_path: Any, ledger: Ledger
) -> None:
    row = ledger.row("Security: forged or replayed deliveries, secrets in any output")
    receiver = FedReceiver(
        kube_cluster.kubeconfig, scene.namespace, RECEIVER_SECRET, tmp_path / "receiver"
    ).start()
    shown: list[str] = []  # everything an operator of the system can read
    used: set[str] = {scene.api_key}
    try:
        operator = scene.start_operator(f"--receiver-url={receiver.url}")
        for name in APPS:
            url = f"{receiver.url}/webhooks/{scene.namespace}/{name}"
            scene.apply(webhook_manifest(scene.namespace, name, url=url))
        bodies = {name: ready_webhook(scene, name, timeout=60) for name in APPS}
        keys = {name: scene.secret(f"{name}-stripe-webhook") for name in APPS}
        for data in keys.values():
            receipts = data[c.SECRET_KEY_RECEIPTS_API_KEY]
            used |= {data[c.SECRET_KEY_SIGNING], receipts}
            used.add(hashlib.sha256(receipts.encode()).hexdigest())
        shown += [json.dumps(body) for body in bodies.values()]

        shop_auth = {"Authorization": f"Bearer {keys['shop'][c.SECRET_KEY_RECEIPTS_API_KEY]}"}
        subscription = scene.stripe.create_subscription(scene.api_key)
        httpx.post(
            f"{receiver.url}/v1/receipts",
            json={"app_user_id": "alice", "fetch_token": subscription.id},
            headers=shop_auth,
            timeout=30,
        ).raise_for_status()
        delivered(scene, bodies["shop"]["status"]["endpointId"], "one", subscription.id)

        # Forged with the other app's secret, and a genuine one replayed after the tolerance.
        event = json.dumps({"id": "evt_forged", "type": c.SUBSCRIPTION_UPDATED}).encode()
        now = int(time.time())
        refused = {
            "no_matching_signature": sign(event, [keys["other"][c.SECRET_KEY_SIGNING]], now),
            "timestamp_outside_tolerance": sign(
                event, [keys["shop"][c.SECRET_KEY_SIGNING]], now - 301
            ),
        }
        accepted_forgeries = 0
        for reason, header in refused.items():
            answer = httpx.post(
                f"{receiver.url}/webhooks/{scene.namespace}/shop",
                content=event,
                headers={"Stripe-Signature": header, "Content-Type": "application/json"},
            )
            if answer.status_code != 400 or answer.json()["error"]["code"] != reason:
                accepted_forgeries += 1
        other_auth = {"Authorization": f"Bearer {keys['other'][c.SECRET_KEY_RECEIPTS_API_KEY]}"}
        theirs = httpx.get(f"{receiver.url}/v1/subscribers/alice", headers=other_auth).json()
        assert theirs["subscriber"]["subscriptions"] == {}

        scene.kubectl(
            "annotate", "--overwrite", "swh", "shop", "-n", scene.namespace,
            f"{c.ANNOTATION_ROTATE}=scan", f"{c.ANNOTATION_ROTATE_OVERLAP}=2s",
        )  # fmt: skip

        def rotated() -> dict[str, Any] | None:
            body = scene.webhook("shop")
            status = body.get("status") or {}
            shown.append(json.dumps(body))
            idle = rotation_step(body) == c.ROTATION_STEP_IDLE
            return body if status.get("secretVersion") == 2 and idle else None

        body = poll("shop rotated", rotated, timeout=60)
        used.add(scene.secret("shop-stripe-webhook")[c.SECRET_KEY_SIGNING])
        delivered(scene, body["status"]["endpointId"], "two", subscription.id)

        shown.append(operator.metrics())
        shown.append(httpx.get(f"{receiver.url}/metrics").text)
        for name in APPS:
            scene.kubectl("delete", "swh", name, "-n", scene.namespace, "--timeout=60s")
        shown.append(scene.kubectl("get", "events", "-n", scene.namespace, "-o", "json").stdout)
        assert try_get_json(scene.kubectl, "swh", "shop", "-n", scene.namespace) is None
        shown.append(operator.log())
    finally:
        receiver.stop()
    shown.append((tmp_path / "receiver" / "receiver.log").read_text(errors="replace"))
    corpus = "\n".join(shown)
    leaks = sorted(f"{secret[:10]}... ({len(secret)} chars)" for secret in used if secret in corpus)
    row.add(trials=1, events_sent=2 + len(refused), applied_twice=accepted_forgeries)
    assert scene.endpoints() == []
    assert accepted_forgeries == 0
    assert "whsec_" not in corpus
    assert not leaks, leaks
