"""Checking that an operator run ended where the specs say: for each wanted StripeWebhook
exactly one enabled endpoint at its URL whose secret (from its Secret) verifies a delivery the
Stripe emulator signed, nothing left of deleted ones, and the receiver's Secret listing exactly
the wanted webhooks. Problems are returned as counts and sentences, for the ledger first and
the assertion after."""

from __future__ import annotations

import json
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from devstack.project.objects import condition, secret_data, try_get_json
from devstack.project.scene import RECEIVER_SECRET, Scene
from stripe_webhook_operator import constants as c
from stripe_webhook_receiver.signing import SignatureError, SigningSecret, verify
from tests.reliability.sink import Sink

SETTLE_TIMEOUT = 90.0
DELIVERY_TIMEOUT = 30.0


@dataclass
class Outcome:
    """What is wrong with the account and the cluster: `lost` wanted things missing or
    broken, `extra` duplicates and orphans."""

    lost: list[str] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    @property
    def clean(self) -> bool:
        return not self.lost and not self.extra


def inspect(scene: Scene, wanted: dict[str, str], gone: set[str]) -> Outcome:
    """Compare Stripe and the cluster with `wanted` (name -> URL) and `gone` (deleted names)."""
    outcome = Outcome()
    by_name: dict[str, list[Any]] = defaultdict(list)
    for endpoint in scene.endpoints():
        metadata = endpoint.metadata.to_dict()
        if metadata.get(c.STRIPE_METADATA_NAMESPACE) == scene.namespace:
            by_name[str(metadata.get(c.STRIPE_METADATA_NAME))].append(endpoint)
    for name, url in wanted.items():
        mine = by_name.pop(name, [])
        outcome.extra += [f"{name}: duplicate endpoint {e.id}" for e in mine[1:]]
        body = try_get_json(scene.kubectl, "stripewebhook", name, "-n", scene.namespace) or {}
        ready = condition(body, c.CONDITION_READY).get("status") == "True"
        observed = (body.get("status") or {}).get("observedGeneration")
        if not ready or observed != body.get("metadata", {}).get("generation"):
            outcome.lost.append(f"{name}: not Ready at its latest generation")
            continue
        secret = try_get_json(
            scene.kubectl, "secret", f"{name}-stripe-webhook", "-n", scene.namespace
        )
        endpoint_id = secret_data(secret or {}).get(c.SECRET_KEY_ENDPOINT_ID)
        live = [e for e in mine if e.id == endpoint_id and e.status == "enabled" and e.url == url]
        if not live:
            outcome.lost.append(f"{name}: no enabled endpoint at {url} matching its Secret")
    for name in gone:
        if try_get_json(scene.kubectl, "stripewebhook", name, "-n", scene.namespace):
            outcome.lost.append(f"{name}: deleted but still present")
    for name, endpoints in by_name.items():
        outcome.extra += [f"{name}: orphaned endpoint {e.id}" for e in endpoints]
    receiver = try_get_json(scene.kubectl, "secret", RECEIVER_SECRET, "-n", scene.namespace)
    entries = set(secret_data(receiver or {}))
    expected = {f"{scene.namespace}.{name}.json" for name in wanted}
    outcome.lost += [f"receiver entry {key} missing" for key in sorted(expected - entries)]
    outcome.extra += [f"receiver entry {key} left over" for key in sorted(entries - expected)]
    return outcome


def settle(
    scene: Scene, wanted: dict[str, str], gone: set[str], timeout: float = SETTLE_TIMEOUT
) -> Outcome:
    """Poll `inspect` until it is clean or `timeout` passes; return the last outcome."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            outcome = inspect(scene, wanted, gone)
        except Exception as exc:  # an API server or emulator hiccup: look again
            outcome = Outcome(lost=[f"inspection failed: {exc}"])
        if outcome.clean or time.monotonic() > deadline:
            return outcome
        time.sleep(0.5)


def check_deliveries(
    scene: Scene, sink: Sink, wanted: dict[str, str], subscription_id: str
) -> list[str]:
    """Update the subscription once; return the wanted webhooks whose Secret does not verify
    the event the emulator delivered to their URL (or that got no delivery)."""
    nonce = secrets.token_hex(6)
    scene.client().v1.subscriptions.update(subscription_id, {"metadata": {"nonce": nonce}})
    pending = dict(wanted)
    problems: dict[str, str] = {}
    deadline = time.monotonic() + DELIVERY_TIMEOUT
    while pending and time.monotonic() < deadline:
        for name, url in list(pending.items()):
            for delivery in sink.at(urlsplit(url).path):
                event = json.loads(delivery.body)
                if event["data"]["object"].get("metadata", {}).get("nonce") != nonce:
                    continue
                data = scene.secret(f"{name}-stripe-webhook")
                try:
                    verify(
                        delivery.body,
                        delivery.signature,
                        [SigningSecret.of(data[c.SECRET_KEY_SIGNING])],
                        now=datetime.now(UTC),
                        tolerance=300,
                    )
                except SignatureError as exc:
                    problems[name] = f"{name}: delivery does not verify ({exc.reason})"
                else:
                    problems.pop(name, None)
                del pending[name]
                break
        time.sleep(0.1)
    return sorted(problems.values()) + [f"{name}: no delivery" for name in sorted(pending)]
