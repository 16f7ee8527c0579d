"""One StripeWebhook rotated under steady subscription traffic, end to end on the local stack:
the real receiver (fed by the Secret projector) behind the emulator's deliveries, the real
operator doing the handshake with it, `kubectl stripe rotate` asking for the rotation."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from devstack.processes import poll
from devstack.project.objects import rotation_step, webhook_manifest
from devstack.project.operator_process import OperatorProcess
from devstack.project.receiver_process import FedReceiver
from devstack.project.rotation.tally import Tally, count, processed_event_ids, receiver_records
from devstack.project.rotation.timeline import EndpointTimeline
from devstack.project.rotation.traffic import (
    Subscribers,
    SubscriptionTraffic,
    emitted_event_ids,
    enrol_subscribers,
)
from devstack.project.scene import Scene, ready_webhook
from stripe_webhook_operator import constants as c

SUBSCRIPTIONS: Final = 3
RATE: Final = 8.0  # updates per second: a steady stream, well inside the emulator's capacity


def operator_flags(receiver: FedReceiver) -> tuple[str, ...]:
    """Flags for an operator that confirms with `receiver` and points endpoints at it."""
    return (f"--receiver-url={receiver.url}", f"--public-base-url={receiver.url}")


@dataclass
class RotationRun:
    """A webhook with live traffic and an endpoint timeline; `before` is its status at the
    start, `started_at` when the rotation was asked for."""

    scene: Scene
    receiver: FedReceiver
    name: str
    subscribers: Subscribers
    traffic: SubscriptionTraffic
    timeline: EndpointTimeline
    before: dict[str, Any]
    old_secret: str
    started_at: float = 0.0
    finished_at: float = 0.0
    operators: list[OperatorProcess] = field(default_factory=list)

    @property
    def webhook(self) -> str:
        return f"{self.scene.namespace}/{self.name}"

    @property
    def secret_name(self) -> str:
        return f"{self.name}{c.SECRET_NAME_SUFFIX}"

    @property
    def database(self) -> Path:
        return self.receiver.database

    def start_operator(self) -> OperatorProcess:
        operator = self.scene.start_operator(*operator_flags(self.receiver))
        self.operators.append(operator)
        return operator

    def status(self) -> dict[str, Any]:
        return dict(self.scene.webhook(self.name).get("status") or {})

    def step(self) -> str:
        """The rotation's step: the `Rotating` condition's reason (Idle when none runs)."""
        return rotation_step(self.scene.webhook(self.name))


def prepare(scene: Scene, receiver: FedReceiver, name: str, *, rate: float = RATE) -> RotationRun:
    """Start an operator, create the webhook, enrol subscribers and start the traffic; return
    once events flow through the first endpoint."""
    run_operator = scene.start_operator(*operator_flags(receiver))
    scene.apply(webhook_manifest(scene.namespace, name))
    before = dict(ready_webhook(scene, name)["status"])
    keys = scene.secret(f"{name}{c.SECRET_NAME_SUFFIX}")
    subscribers = enrol_subscribers(
        scene.stripe,
        scene.api_key,
        receiver.url,
        keys[c.SECRET_KEY_RECEIPTS_API_KEY],
        SUBSCRIPTIONS,
    )
    timeline = EndpointTimeline(scene.stripe.base_url, scene.api_key).start()
    traffic = SubscriptionTraffic(scene.client(), subscribers, rate=rate).start()
    traffic.wait_for(3)
    return RotationRun(
        scene,
        receiver,
        name,
        subscribers,
        traffic,
        timeline,
        before,
        keys[c.SECRET_KEY_SIGNING],
        operators=[run_operator],
    )


def request_rotation(run: RotationRun, overlap: str) -> None:
    """`kubectl stripe rotate NAME -n NS --overlap OVERLAP` (the plugin must be on PATH)."""
    run.started_at = time.time()
    done = run.scene.kubectl(
        "stripe", "rotate", run.name, "-n", run.scene.namespace, "--overlap", overlap
    )
    assert "Requested rotation" in done.stdout, done.stdout


def wait_rotated(run: RotationRun, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the rotation completed (next secret version, step Idle); return status."""
    version = int(run.before["secretVersion"]) + 1

    def check() -> dict[str, Any] | None:
        body = run.scene.webhook(run.name)
        status = dict(body.get("status") or {})
        done = status.get("secretVersion") == version and rotation_step(body) == "Idle"
        return status if done else None

    status = poll(f"{run.webhook} rotated to version {version}", check, timeout)
    run.finished_at = time.time()
    return status


def finish(run: RotationRun, new_endpoint: str, settle: float = 60.0) -> Tally:
    """Stop the traffic, let Stripe's deliveries settle, and tally the run."""
    run.traffic.stop()
    assert not run.traffic.errors, run.traffic.errors
    stripe = run.scene.stripe
    attempts = stripe.wait_until_settled(run.scene.api_key, timeout=settle)
    run.timeline.stop()
    # The last answers are committed before Stripe sees them; the same holds for the rows.
    return count(
        emitted_event_ids(run.scene.client()),
        attempts,
        receiver_records(run.database, run.webhook),
        processed_event_ids(run.database, run.webhook),
        old_endpoint=str(run.before["endpointId"]),
        new_enabled_since=run.timeline.enabled_since(new_endpoint),
    )
