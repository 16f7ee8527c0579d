"""What the rotation tests ask of the receiver directly, beside the shared run
(devstack.project.rotation.run): the fingerprints it lists, and deliveries signed by hand."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time

import httpx

from devstack.project.rotation.run import RotationRun


def fingerprint(secret: str) -> str:
    """The public name of a secret (the lead's contract for /readyz/webhooks)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def loaded_fingerprints(run: RotationRun) -> list[str]:
    """Fingerprints the receiver lists for the webhook on /readyz/webhooks."""
    answer = httpx.get(f"{run.receiver.url}/readyz/webhooks/{run.webhook}", timeout=5)
    answer.raise_for_status()
    return list(answer.json()["fingerprints"])


def probe_event(run: RotationRun) -> bytes:
    """A fresh `customer.subscription.updated` event (a copy of a real one under a new id)."""
    client = run.scene.client()
    page = client.v1.events.list(params={"type": "customer.subscription.updated", "limit": 1})
    answer = httpx.get(
        f"{run.scene.stripe.base_url}/v1/events/{page.data[0].id}",
        auth=(run.scene.api_key, ""),
        timeout=10,
    )
    answer.raise_for_status()
    event = answer.json()
    event["id"] = f"evt_probe{secrets.token_hex(8)}"
    event["created"] = int(time.time())
    return json.dumps(event).encode()


def post_signed(run: RotationRun, body: bytes, secret: str) -> httpx.Response:
    """POST `body` to the webhook's receiver URL, signed with `secret` as Stripe signs."""
    stamp = int(time.time())
    mac = hmac.new(secret.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return httpx.post(
        f"{run.receiver.url}/webhooks/{run.webhook}",
        content=body,
        headers={"Stripe-Signature": f"t={stamp},v1={mac}", "Content-Type": "application/json"},
        timeout=10,
    )
