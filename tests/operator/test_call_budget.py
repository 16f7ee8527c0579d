"""What creating and re-checking webhooks costs in Stripe calls: three writes per new webhook
and nothing else (no list, no read of what Stripe just answered, no second pass for the
operator's own Secret writes); a restart with every webhook unchanged costs one list call for
the account."""

from __future__ import annotations

from typing import Any

import pytest

from devstack.processes import poll
from devstack.project.objects import webhook_manifest
from devstack.project.scene import Scene, ready_webhook

pytestmark = pytest.mark.integration

LIST = "GET /v1/webhook_endpoints"
CREATE = "POST /v1/webhook_endpoints"
UPDATE = "POST /v1/webhook_endpoints/{id}"
NAMES = [f"app-{i}" for i in range(4)]
# Drift passes would add list calls of their own: none falls inside these tests.
NO_DRIFT = "--drift-interval=1h"


def stripe_calls(scene: Scene) -> dict[str, int]:
    calls: dict[str, Any] = scene.stripe.stats(scene.api_key)["calls"]
    return {call: int(count) for call, count in calls.items() if count}


def test_new_webhooks_cost_create_disable_enable_and_nothing_else(scene: Scene) -> None:
    scene.start_operator(NO_DRIFT)
    scene.stripe.reset_stats(scene.api_key)
    for name in NAMES:
        scene.apply(webhook_manifest(scene.namespace, name))
    for name in NAMES:
        ready_webhook(scene, name)
    assert stripe_calls(scene) == {CREATE: len(NAMES), UPDATE: 2 * len(NAMES)}
    for name in NAMES:
        events = scene.event_reasons(name)
        assert events.count("EndpointEnabled") == 1, events


def test_restart_with_unchanged_webhooks_costs_one_list_call(scene: Scene) -> None:
    first = scene.start_operator(NO_DRIFT)
    for name in NAMES:
        scene.apply(webhook_manifest(scene.namespace, name))
    versions = {name: ready_webhook(scene, name)["metadata"]["resourceVersion"] for name in NAMES}
    first.kill()
    scene.stripe.reset_stats(scene.api_key)

    second = scene.start_operator(NO_DRIFT)
    # The operator's metrics count each finished pass.
    poll("one pass per webhook", lambda: passes(second.metrics()) >= len(NAMES))
    assert stripe_calls(scene) == {LIST: 1}
    for name in NAMES:
        # Nothing changed, so nothing was written: not even status.
        assert scene.webhook(name)["metadata"]["resourceVersion"] == versions[name]


def passes(metrics: str) -> float:
    """Sum the operator's reconcile counter over its outcomes."""
    total = 0.0
    for line in metrics.splitlines():
        if line.startswith("stripe_webhook_operator_reconciles_total"):
            total += float(line.rsplit(" ", 1)[1])
    return total
