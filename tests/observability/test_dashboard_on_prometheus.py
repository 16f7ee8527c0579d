"""The Grafana dashboard on a real Prometheus: a StripeWebhook's whole journey runs while Debian's
Prometheus scrapes the operator and the receiver as the chart's ServiceMonitors describe, then
every query of every panel (Grafana's variables substituted) is evaluated over the journey
through Prometheus's HTTP API and must return data, unless this file names why it cannot.

The journey: the StripeWebhook is applied before its API-key Secret exists (ApiKeyMissing), then
the Secret, Ready; a subscription's update arrives before its receipt (receipt_not_found), the
receipt replays it, another update is applied; someone posts an unsigned request; the secret is
rotated and an update during the overlap comes from both endpoints (one copy a duplicate);
Stripe disables the endpoint and the operator re-enables it. Prometheus also evaluates the
chart's alerting rules meanwhile: the one alert that must fire is the disabled endpoint's.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx
import pytest

from devstack.processes import poll
from devstack.project.objects import api_key_secret, webhook_manifest
from devstack.project.receiver_process import FedReceiver as Receiver
from devstack.project.rotation.run import operator_flags
from devstack.project.scene import Scene, ready_webhook
from devstack.services.dashboard import evaluate
from devstack.services.prometheus import PrometheusServer
from devstack.services.scrape_config import local_config
from stripe_webhook_operator import constants as c
from tests.operator.conftest import condition_reason
from tests.operator.test_rotation import annotate, rotated_to

pytestmark = pytest.mark.integration

NAME = "shop"
API_KEY_SECRET = "shop-api-key"
SCRAPE_SECONDS = 1
# Queries that cannot have data in this journey, by (panel title, legend), with the reason.
WITHOUT_DATA = {
    ("Secret reloads", "errors (1h)"): (
        "no webhook file is ever broken in the journey, and the counter has a series (one per "
        "broken file) only once one was"
    ),
}
# The alerts the journey must make fire: Stripe disabled the endpoint once. Every other alert
# stays silent through a healthy journey.
EXPECTED_FIRING = {"StripeWebhookEndpointDisabledByStripe"}


def seen(server: PrometheusServer, expr: str) -> bool:
    """Whether an instant query returns anything now."""
    return bool(server.query(expr))


# --- the journey -----------------------------------------------------------------------------


def apply_before_the_api_key(scene: Scene) -> dict[str, Any]:
    """Apply the StripeWebhook before its API-key Secret, then the Secret; return it Ready."""
    manifest = json.loads(webhook_manifest(scene.namespace, NAME))
    manifest["spec"]["apiKeySecretRef"]["name"] = API_KEY_SECRET
    scene.apply(json.dumps(manifest))
    condition_reason(scene, NAME, "ApiKeyMissing")
    scene.apply(api_key_secret(scene.namespace, scene.api_key, name=API_KEY_SECRET))
    return ready_webhook(scene, NAME)


def update(scene: Scene, subscription_id: str, step: str) -> None:
    """Change the subscription in Stripe: one `customer.subscription.updated` event."""
    scene.client().v1.subscriptions.update(subscription_id, params={"metadata": {"step": step}})


def delivered(outcome: str) -> str:
    return f'stripe_webhook_receiver_deliveries_total{{outcome="{outcome}"}}'


def register_receipt(scene: Scene, receiver: Receiver, subscription_id: str) -> None:
    """Register the subscription for a user of the app, as the app does after a checkout."""
    receipts_key = scene.secret(f"{NAME}{c.SECRET_NAME_SUFFIX}")[c.SECRET_KEY_RECEIPTS_API_KEY]
    answer = httpx.post(
        f"{receiver.url}/v1/receipts",
        headers={"Authorization": f"Bearer {receipts_key}"},
        json={"app_user_id": "journey-user", "fetch_token": subscription_id},
        timeout=10,
    )
    answer.raise_for_status()


def run_journey(scene: Scene, receiver: Receiver, server: PrometheusServer) -> None:
    """Walk the journey; each step waits until Prometheus has scraped what it changed."""
    apply_before_the_api_key(scene)
    subscription = scene.stripe.create_subscription(scene.api_key)
    update(scene, subscription.id, "before-receipt")
    server.wait_above("a delivery held for its receipt", delivered("receipt_not_found"), 0)

    register_receipt(scene, receiver, subscription.id)
    replayed = "stripe_webhook_receiver_replayed_deliveries_total"
    server.wait_above("the held delivery replayed", replayed, 0)
    applied = server.total(delivered("applied"))
    update(scene, subscription.id, "after-receipt")
    server.wait_above("the next update applied", delivered("applied"), applied)

    probe = httpx.post(f"{receiver.url}/webhooks/{scene.namespace}/{NAME}", content=b"{}")
    assert probe.status_code == 400
    failures = "stripe_webhook_receiver_verification_failures_total"
    server.wait_above("the unsigned request counted", failures, 0)

    annotate(scene, NAME, f"{c.ANNOTATION_ROTATE}=journey", f"{c.ANNOTATION_ROTATE_OVERLAP}=8s")
    rotated_to(scene, NAME, 2, step="Overlap")
    duplicates = server.total(delivered("duplicate"))
    update(scene, subscription.id, "during-overlap")
    server.wait_above("the overlap's second copy", delivered("duplicate"), duplicates)
    step = "stripe_webhook_operator_rotation_step_started_timestamp_seconds"
    overlap = f'last_over_time({step}{{step="Overlap"}}[5m])'
    server.wait_for("the overlap seen as a rotation step", lambda: seen(server, overlap))
    status = rotated_to(scene, NAME, 2)["status"]

    scene.stripe.disable_endpoint(status["endpointId"])
    poll(
        "the operator re-enabling the endpoint",
        lambda: (
            "EndpointDisabledByStripe" in scene.event_reasons(NAME)
            and {e.status for e in scene.endpoints()} == {"enabled"}
        ),
    )
    alert = 'ALERTS{alertname="StripeWebhookEndpointDisabledByStripe",alertstate="firing"}'
    server.wait_for("the disabled endpoint's alert firing", lambda: seen(server, alert))


def test_every_dashboard_query_has_data_after_the_journey(
    scene: Scene, receiver: Receiver, start_prometheus: Any
) -> None:
    began = time.time()
    operator = scene.start_operator(*operator_flags(receiver))
    config, endpoints = local_config(
        scene.namespace,
        {
            "operator": f"127.0.0.1:{operator.metrics_port}",
            "receiver": f"127.0.0.1:{receiver.port}",
        },
        interval=f"{SCRAPE_SECONDS}s",
    )
    server: PrometheusServer = start_prometheus(config)
    targets = server.wait_until_scraped(len(endpoints))
    assert {(t["labels"]["job"], t["labels"]["namespace"]) for t in targets} == {
        ("operator", scene.namespace),
        ("receiver", scene.namespace),
    }
    assert {t["labels"]["pod"] for t in targets} == {e.pod for e in endpoints}

    run_journey(scene, receiver, server)
    time.sleep(2 * SCRAPE_SECONDS)  # the last changes scraped by now
    end = time.time()

    missing = []
    for evaluated in evaluate(server, began, end, SCRAPE_SECONDS):
        key = evaluated.query.key
        if key in WITHOUT_DATA:
            assert not evaluated.samples, f"{key} has data now: drop it from WITHOUT_DATA"
            continue
        if not evaluated.samples:
            missing.append(evaluated.describe())
            continue
        assert not evaluated.legend_labels_missing(), (
            f"{key}: the legend names {evaluated.legend_labels_missing()}, which its series "
            "do not carry"
        )
    assert not missing, "queries without data after the journey:\n" + "\n".join(missing)

    webhooks = server.label_values("webhook", "stripe_webhook_receiver_deliveries_total")
    assert f"{scene.namespace}/{NAME}" in webhooks

    firing = server.query_range('ALERTS{alertstate="firing"}', began, end, SCRAPE_SECONDS)
    assert {item["metric"]["alertname"] for item in firing} == EXPECTED_FIRING
    pending = [a["labels"]["alertname"] for a in server.alerts() if a["state"] == "pending"]
    assert pending == [], f"alerts pending at the end of a healthy journey: {pending}"
