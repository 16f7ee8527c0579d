"""Rotation through the state machine: requested by annotation (with an overlap, as an
emergency with none, queued while one runs), replacement on a `stripeApiVersion` change, and
the readiness handshake with the real receiver holding the new endpoint disabled until it
confirms."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from devstack.processes import poll
from devstack.project.objects import condition, rotation_step, webhook_manifest
from devstack.project.receiver_process import FedReceiver
from devstack.project.scene import Scene, ready_webhook
from stripe_webhook_operator import constants as c
from tests.operator.conftest import condition_reason, receiver_entry

pytestmark = pytest.mark.integration


def annotate(scene: Scene, name: str, *pairs: str) -> None:
    scene.kubectl("annotate", "--overwrite", "swh", name, "-n", scene.namespace, *pairs)


def rotated_to(scene: Scene, name: str, version: int, step: str = "Idle") -> dict:
    def check() -> dict | None:
        body = scene.webhook(name)
        status = body.get("status") or {}
        done = status.get("secretVersion") == version and rotation_step(body) == step
        return body if done else None

    return poll(f"{name} at version {version} ({step})", check)


def test_requested_rotation_overlaps_then_drops_the_old_endpoint(scene: Scene) -> None:
    operator = scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    first = ready_webhook(scene, "shop")["status"]
    old_secret = scene.secret("shop-stripe-webhook")[c.SECRET_KEY_SIGNING]
    annotate(scene, "shop", f"{c.ANNOTATION_ROTATE}=one", f"{c.ANNOTATION_ROTATE_OVERLAP}=6s")

    body = rotated_to(scene, "shop", 2, step="Overlap")
    status = body["status"]
    assert status["previousEndpointId"] == first["endpointId"]
    assert status["endpointId"] != first["endpointId"]
    assert status["previousSecretExpiresAt"].endswith("Z")
    assert {e.id: e.status for e in scene.endpoints()} == {
        status["endpointId"]: "enabled",
        first["endpointId"]: "enabled",
    }
    data = scene.secret("shop-stripe-webhook")
    assert data[c.SECRET_KEY_PREVIOUS_SIGNING] == old_secret
    assert data[c.SECRET_KEY_SIGNING] != old_secret
    entry = receiver_entry(scene, "shop")
    assert entry is not None
    assert [s["secret"] for s in entry["signing_secrets"]] == [
        data[c.SECRET_KEY_SIGNING],
        old_secret,
    ]
    assert entry["signing_secrets"][1]["not_after"] == status["previousSecretExpiresAt"]

    body = rotated_to(scene, "shop", 2)
    assert "previousEndpointId" not in body["status"]
    assert [e.id for e in scene.endpoints()] == [status["endpointId"]]
    assert c.SECRET_KEY_PREVIOUS_SIGNING not in scene.secret("shop-stripe-webhook")
    entry = receiver_entry(scene, "shop")
    assert entry is not None
    assert len(entry["signing_secrets"]) == 1
    reasons = scene.event_reasons("shop")
    for reason in ("RotationStarted", "NewEndpointCreated", "OldEndpointDeleted"):
        assert reason in reasons
    assert "RotationCompleted" in poll(
        "RotationCompleted", lambda: (r := scene.event_reasons("shop")) and r
    )

    # No secret value reached status, Events or the operator's log.
    operator_log = operator.log()
    event_text = json.dumps(scene.events("shop"))
    status_text = json.dumps(scene.webhook("shop"))
    for value in (old_secret, data[c.SECRET_KEY_SIGNING], scene.api_key):
        assert value not in operator_log
        assert value not in event_text
        assert value not in status_text
    assert "whsec_" not in operator_log

    # The same annotation value never starts another rotation.
    annotate(scene, "shop", "unrelated=change")
    time.sleep(3)
    assert scene.webhook("shop")["status"]["secretVersion"] == 2


def test_emergency_rotation_drops_the_old_secret_at_once(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    first = ready_webhook(scene, "shop")["status"]
    annotate(scene, "shop", f"{c.ANNOTATION_ROTATE}=leak", f"{c.ANNOTATION_ROTATE_OVERLAP}=0")
    body = rotated_to(scene, "shop", 2)
    assert [e.id for e in scene.endpoints()] == [body["status"]["endpointId"]]
    assert body["status"]["endpointId"] != first["endpointId"]
    assert c.SECRET_KEY_PREVIOUS_SIGNING not in scene.secret("shop-stripe-webhook")


def test_request_during_a_rotation_is_queued(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    ready_webhook(scene, "shop")
    annotate(scene, "shop", f"{c.ANNOTATION_ROTATE}=a", f"{c.ANNOTATION_ROTATE_OVERLAP}=4s")
    rotated_to(scene, "shop", 2, step="Overlap")
    annotate(scene, "shop", f"{c.ANNOTATION_ROTATE}=b")
    body = rotated_to(scene, "shop", 3, step="Overlap")
    assert body["status"]["rotationRequest"] == "b"
    rotated_to(scene, "shop", 3)
    assert len(scene.endpoints()) == 1


def test_api_version_change_replaces_the_endpoint(scene: Scene) -> None:
    scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    first = ready_webhook(scene, "shop")["status"]
    scene.apply(
        webhook_manifest(
            scene.namespace,
            "shop",
            stripeApiVersion="2025-03-31.basil",
            rotation={"overlap": "1m"},
        )
    )
    body = rotated_to(scene, "shop", 2, step="Overlap")
    endpoints = {e.id: e for e in scene.endpoints()}
    assert set(endpoints) == {first["endpointId"], body["status"]["endpointId"]}
    assert endpoints[body["status"]["endpointId"]].api_version == "2025-03-31.basil"
    assert body["status"]["rotationTrigger"] == "ApiVersionChanged"


def test_new_endpoint_stays_disabled_until_the_receiver_holds_its_secret(
    scene: Scene, receiver: FedReceiver
) -> None:
    scene.start_operator(f"--receiver-url={receiver.url}")
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    body = ready_webhook(scene, "shop")
    propagated = condition(body, c.CONDITION_SECRET_PROPAGATED)
    assert propagated["status"] == "True"
    assert propagated["reason"] == "ReceiverConfirmed"

    receiver.stop_server()
    annotate(scene, "shop", f"{c.ANNOTATION_ROTATE}=x", f"{c.ANNOTATION_ROTATE_OVERLAP}=1s")
    condition_reason(scene, "shop", "WaitingForReceiver", c.CONDITION_SECRET_PROPAGATED)
    new_id = scene.webhook("shop")["status"]["newEndpointId"]
    time.sleep(1)
    assert scene.client().v1.webhook_endpoints.retrieve(new_id).status == "disabled"
    assert scene.webhook("shop")["status"]["secretVersion"] == 1

    receiver.start()
    rotated_to(scene, "shop", 2)
    assert scene.client().v1.webhook_endpoints.retrieve(new_id).status == "enabled"
    assert "SecretPropagated" in scene.event_reasons("shop")


def test_operator_killed_while_waiting_for_the_receiver_resumes_the_rotation(
    scene: Scene, receiver: FedReceiver
) -> None:
    first_operator = scene.start_operator(f"--receiver-url={receiver.url}")
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    old_id = ready_webhook(scene, "shop")["status"]["endpointId"]
    receiver.stop_server()
    annotate(scene, "shop", f"{c.ANNOTATION_ROTATE}=x", f"{c.ANNOTATION_ROTATE_OVERLAP}=0")
    condition_reason(scene, "shop", "WaitingForReceiver", c.CONDITION_SECRET_PROPAGATED)
    new_id = scene.webhook("shop")["status"]["newEndpointId"]
    first_operator.kill()

    receiver.start()
    scene.start_operator(f"--receiver-url={receiver.url}")
    body = rotated_to(scene, "shop", 2)
    assert body["status"]["endpointId"] == new_id
    assert [e.id for e in scene.endpoints()] == [new_id]
    assert old_id != new_id


def test_rotate_annotation_is_seen_at_once_not_at_the_next_drift_pass(scene: Scene) -> None:
    # kopf hides annotations under its own storage prefix from change handlers; with the
    # operator's prefix there, `stripe.operator.dev/rotate` waited for the drift timer.
    scene.start_operator("--drift-interval=10m")
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    ready_webhook(scene, "shop")
    annotate(scene, "shop", f"{c.ANNOTATION_ROTATE}=now", f"{c.ANNOTATION_ROTATE_OVERLAP}=1h")
    body = rotated_to(scene, "shop", 2, step="Overlap")
    assert body["status"]["previousEndpointId"] != body["status"]["endpointId"]


def test_scheduled_rotation_starts_once_every_has_passed(scene: Scene) -> None:
    scene.start_operator()
    rotation_spec = {"every": "2h", "overlap": "1m"}
    scene.apply(webhook_manifest(scene.namespace, "shop", rotation=rotation_spec))
    first = ready_webhook(scene, "shop")["status"]
    time.sleep(3)  # drift passes: a webhook rotated just now is not due
    assert scene.webhook("shop")["status"]["secretVersion"] == 1
    # Pretend the last rotation was three hours ago: two hours have passed, one is due.
    three_hours_ago = datetime.now(UTC) - timedelta(hours=3)
    patch = json.dumps(
        {"status": {"lastRotationTime": three_hours_ago.strftime("%Y-%m-%dT%H:%M:%SZ")}}
    )
    scene.kubectl(
        "patch", "swh", "shop", "-n", scene.namespace,
        "--subresource=status", "--type=merge", "-p", patch,
    )  # fmt: skip
    body = rotated_to(scene, "shop", 2, step="Overlap")
    status = body["status"]
    assert status["rotationTrigger"] == "Scheduled"
    assert status["previousEndpointId"] == first["endpointId"]
    last = datetime.fromisoformat(status["lastRotationTime"].replace("Z", "+00:00"))
    assert datetime.now(UTC) - last < timedelta(minutes=5)


def test_status_written_by_the_previous_version_is_read_once_and_rewritten(scene: Scene) -> None:
    first = scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop"))
    status = ready_webhook(scene, "shop")["status"]
    first.kill()
    # What the 0.1 releases wrote: everything in `status.rotation`, its step in `phase`, and
    # no `Rotating` condition. The request there was handled: it must not start a rotation.
    annotate(scene, "shop", f"{c.ANNOTATION_ROTATE}=before-the-upgrade")
    legacy = {
        "rotation": {
            "phase": "Idle",
            "trigger": "Created",
            "request": "before-the-upgrade",
            "overlapSeconds": 0,
            "applied": {"apiVersion": status["stripeApiVersion"], "connect": False},
        },
        "rotationRequest": None,
        "rotationTrigger": None,
        "rotationOverlapSeconds": None,
        "stripeApiVersion": None,
        "connect": None,
        "conditions": [item for item in status["conditions"] if item["type"] != "Rotating"],
    }
    scene.kubectl(
        "patch", "swh", "shop", "-n", scene.namespace,
        "--subresource=status", "--type=merge", "-p", json.dumps({"status": legacy}),
    )  # fmt: skip
    assert scene.webhook("shop")["status"]["rotation"]["request"] == "before-the-upgrade"

    scene.start_operator()

    def rewritten() -> dict | None:
        body = scene.webhook("shop")
        done = "rotation" not in body["status"] and condition(body, "Rotating")
        return body if done else None

    body = poll("status rewritten in the new shape", rewritten)
    new = body["status"]
    assert new["rotationRequest"] == "before-the-upgrade"
    assert new["rotationTrigger"] == "Created"
    assert (new["stripeApiVersion"], new["connect"]) == (status["stripeApiVersion"], False)
    assert condition(body, "Rotating")["status"] == "False"
    assert condition(body, "Rotating")["reason"] == "Idle"
    # Read once: written once, then drift passes find nothing to write.
    time.sleep(3)
    settled = scene.webhook("shop")["metadata"]["resourceVersion"]
    time.sleep(3)
    assert scene.webhook("shop")["metadata"]["resourceVersion"] == settled
    assert scene.webhook("shop")["status"]["secretVersion"] == 1
    assert [e.id for e in scene.endpoints()] == [status["endpointId"]]
