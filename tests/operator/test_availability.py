"""High availability and crashes: kill -9 between Stripe's create answer and the Secret write
heals to one endpoint and a working secret; two replicas with peering share the work without
creating anything twice, and the survivor takes over when the active one is killed."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from devstack.processes import poll
from devstack.project.objects import webhook_manifest
from devstack.project.scene import Scene, ready_webhook
from stripe_webhook_operator import constants as c
from tests.operator.peering import install_peering

pytestmark = pytest.mark.integration


class _Recorder(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[bytes, str]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        type(self).received.append((body, self.headers.get("Stripe-Signature", "")))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[tuple[bytes, str]]]]:
    """An HTTP sink on 127.0.0.1 recording what the emulator delivers (body, signature)."""
    handler = type("Recorder", (_Recorder,), {"received": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", handler.received
    server.shutdown()
    server.server_close()


def signed_by(secret: str, body: bytes, header: str) -> bool:
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    signatures = [v for k, v in (i.split("=", 1) for i in header.split(",")) if k == "v1"]
    payload = f"{parts['t']}.".encode() + body
    expected = hmac.new(secret.encode(), payload, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)


def test_kill_between_create_answer_and_secret_write_heals_to_one_endpoint(
    scene: Scene, recorder: tuple[str, list[tuple[bytes, str]]]
) -> None:
    url, received = recorder
    # The emulator creates the endpoint at once and holds its answer: the operator has changed
    # Stripe's state but not heard of it, the window a crash must not turn into a duplicate.
    scene.stripe.inject_fault(
        scene.api_key, path_prefix="/v1/webhook_endpoints", method="POST", answer_latency=60
    )
    first = scene.start_operator()
    scene.apply(webhook_manifest(scene.namespace, "shop", url=url))
    poll("endpoint created in Stripe", lambda: len(scene.endpoints()) == 1)
    (created,) = scene.endpoints()
    assert (
        "shop-stripe-webhook"
        not in scene.kubectl("get", "secrets", "-n", scene.namespace, "-o", "name").stdout
    )
    first.kill()

    scene.start_operator()
    body = ready_webhook(scene, "shop", timeout=40)
    (endpoint,) = scene.endpoints()
    assert endpoint.id == created.id == body["status"]["endpointId"]
    assert endpoint.status == "enabled"
    assert body["status"]["secretVersion"] == 1
    assert c.ANNOTATION_PENDING_IDEMPOTENCY_KEY not in body["metadata"]["annotations"]
    secret = scene.secret("shop-stripe-webhook")[c.SECRET_KEY_SIGNING]

    # The secret works: a real delivery from the emulator verifies with it.
    subscription = scene.stripe.create_subscription(scene.api_key)
    scene.client().v1.subscriptions.update(subscription.id, {"metadata": {"n": "1"}})
    poll("delivery received", lambda: len(received) >= 1)
    payload, header = received[-1]
    assert json.loads(payload)["type"] == c.SUBSCRIPTION_UPDATED
    assert signed_by(secret, payload, header)


def test_two_replicas_with_peering_share_the_work_without_double_creating(
    scene: Scene,
) -> None:
    install_peering(scene.kubectl, scene.namespace, "stripe-test")
    peering = ("--peering=stripe-test", "--peering-lifetime=6s")
    active = scene.start_operator(*peering, "--priority=200")
    standby = scene.start_operator(*peering, "--priority=100")
    names = [f"app-{i}" for i in range(3)]
    for name in names:
        scene.apply(webhook_manifest(scene.namespace, name))
    for name in names:
        assert ready_webhook(scene, name)["status"]["secretVersion"] == 1
    time.sleep(3)  # several drift passes of whichever replica works
    assert len(scene.endpoints()) == 3
    # The standby never worked: it stayed paused and handled nothing.
    assert "rotation to version" in active.log()
    assert "Resuming operations" not in standby.log()
    assert "Handler '" not in standby.log()
    assert "rotation to version" not in standby.log()

    active.kill()
    scene.apply(webhook_manifest(scene.namespace, "late"))
    ready_webhook(scene, "late", timeout=60)
    assert "Resuming operations" in standby.log()
    endpoints = scene.endpoints()
    assert len(endpoints) == 4
    assert sorted(e.metadata[c.STRIPE_METADATA_NAME] for e in endpoints) == sorted([*names, "late"])
