"""Prometheus metrics. Labels carry methods, outcomes, reasons, statuses, rotation steps and
webhook names (`namespace/name` of the StripeWebhooks the operator handles, a set the cluster's
configuration bounds), never a secret, an API key or an endpoint URL."""

from __future__ import annotations

import contextlib
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest

REGISTRY: Final = CollectorRegistry(auto_describe=True)

RECONCILES: Final = Counter(
    "stripe_webhook_operator_reconciles",
    "Reconcile passes of StripeWebhook resources, by outcome.",
    ["outcome"],
    registry=REGISTRY,
)
STRIPE_CALLS: Final = Counter(
    "stripe_webhook_operator_stripe_calls",
    "HTTP calls to Stripe, by method (create, retrieve, update, delete, list, list_events) and "
    "outcome (ok, 429, or the HTTP status class, or network).",
    ["method", "outcome"],
    registry=REGISTRY,
)
ERRORS: Final = Counter(
    "stripe_webhook_operator_errors",
    "Errors met while reconciling, by condition reason.",
    ["reason"],
    registry=REGISTRY,
)
ENDPOINTS: Final = Gauge(
    "stripe_webhook_operator_endpoints",
    "Stripe endpoints of the StripeWebhooks this replica handles, by Stripe status.",
    ["stripe_status"],
    registry=REGISTRY,
)
WEBHOOKS: Final = Gauge(
    "stripe_webhook_operator_webhooks",
    "StripeWebhooks this replica runs a reconcile loop for (none on a standby replica).",
    registry=REGISTRY,
)
LAST_SUCCESS: Final = Gauge(
    "stripe_webhook_operator_last_successful_reconcile_timestamp_seconds",
    "Unix time of the last reconcile pass that left its StripeWebhook Ready, or of the "
    "operator's start while none has.",
    registry=REGISTRY,
)
DRIFT_INTERVAL: Final = Gauge(
    "stripe_webhook_operator_drift_interval_seconds",
    "Seconds between two drift passes over a webhook (`--drift-interval`).",
    registry=REGISTRY,
)
ROTATION_STEP: Final = Gauge(
    "stripe_webhook_operator_rotation_step_started_timestamp_seconds",
    "Unix time at which this replica saw the webhook enter its current rotation step "
    "(Creating, Propagating, Enabling, Overlap); no series while the webhook is Idle.",
    ["webhook", "step"],
    registry=REGISTRY,
)
EVENTS_RECOVERED: Final = Counter(
    "stripe_webhook_operator_events_recovered",
    "Events listed from Stripe's Events API and redelivered to the receiver with a definite "
    "answer (2xx, or a receipt_not_found stored for replay), by webhook.",
    ["namespace", "webhook"],
    registry=REGISTRY,
)
GAPS_OPEN: Final = Gauge(
    "stripe_webhook_operator_recovery_gaps_open",
    "Recovery gaps of the webhook not closed yet (still open, or waiting to be recovered).",
    ["namespace", "webhook"],
    registry=REGISTRY,
)
OLDEST_GAP: Final = Gauge(
    "stripe_webhook_operator_recovery_oldest_gap_seconds",
    "Seconds since the start of the webhook's oldest recovery gap (0 without gaps).",
    ["namespace", "webhook"],
    registry=REGISTRY,
)
BEYOND_RETENTION: Final = Counter(
    "stripe_webhook_operator_recovery_beyond_retention",
    "Intervals found older than Stripe's event retention, whose events cannot be recovered.",
    ["namespace", "webhook"],
    registry=REGISTRY,
)

# The reason alerted on when Stripe disables an endpoint. Its series exists from the start at 0,
# so that its first increase is seen as one: a counter that appears already at 1 shows no
# increase to `increase()`.
ENDPOINT_DISABLED_REASON: Final = "EndpointDisabledByStripe"
ERRORS.labels(reason=ENDPOINT_DISABLED_REASON)
for _outcome in ("ok", "not_ready"):
    RECONCILES.labels(outcome=_outcome)

_statuses: dict[str, str] = {}
_steps: dict[str, str] = {}


def record_endpoint_status(uid: str, status: str | None) -> None:
    """Remember the Stripe status of one webhook's endpoint (None: it has none any more)."""
    if status is None:
        _statuses.pop(uid, None)
    else:
        _statuses[uid] = status
    counts: dict[str, int] = {"enabled": 0, "disabled": 0}
    for value in _statuses.values():
        counts[value] = counts.get(value, 0) + 1
    for value, count in counts.items():
        ENDPOINTS.labels(stripe_status=value).set(count)


def record_start(now: float, drift_interval: float) -> None:
    """When the operator starts, publish its drift interval and count the wait for a first
    successful pass from now."""
    LAST_SUCCESS.set(now)
    DRIFT_INTERVAL.set(drift_interval)


def record_pass(webhook: str, ready: bool, step: str | None, now: float) -> None:
    """When a reconcile pass over `webhook` ends, count it, stamp it if it left the webhook
    Ready, and note the rotation step it left the webhook in (None: Idle)."""
    RECONCILES.labels(outcome="ok" if ready else "not_ready").inc()
    if ready:
        LAST_SUCCESS.set(now)
    record_rotation_step(webhook, step, now)


def record_rotation_step(webhook: str, step: str | None, now: float) -> None:
    """Keep one series per webhook in a rotation step, stamped when the step was first seen;
    a step seen again keeps its stamp, so the series says how long the step has lasted."""
    previous = _steps.get(webhook)
    if previous == step:
        return
    if previous is not None:
        ROTATION_STEP.remove(webhook, previous)
        del _steps[webhook]
    if step is not None:
        _steps[webhook] = step
        ROTATION_STEP.labels(webhook=webhook, step=step).set(now)


def record_gaps(namespace: str, webhook: str, count: int, oldest_seconds: float) -> None:
    """Publish a webhook's recovery gaps: how many, and the age of the oldest. The counters
    get their series too, at 0, so that their first increase shows."""
    GAPS_OPEN.labels(namespace=namespace, webhook=webhook).set(count)
    OLDEST_GAP.labels(namespace=namespace, webhook=webhook).set(oldest_seconds)
    EVENTS_RECOVERED.labels(namespace=namespace, webhook=webhook)
    BEYOND_RETENTION.labels(namespace=namespace, webhook=webhook)


def forget_gaps(namespace: str, webhook: str) -> None:
    """Drop a webhook's recovery series once this replica stops handling it."""
    for metric in (GAPS_OPEN, OLDEST_GAP, EVENTS_RECOVERED, BEYOND_RETENTION):
        with contextlib.suppress(KeyError):
            metric.remove(namespace, webhook)


def exposition() -> bytes:
    """Return every metric in Prometheus' text format."""
    return generate_latest(REGISTRY)
