"""Prometheus metrics. Labels carry methods, outcomes, reasons and statuses, never a secret,
an API key or an endpoint URL."""

from __future__ import annotations

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
    "HTTP calls to Stripe, by method (create, retrieve, update, delete, list) and outcome "
    "(ok, or the HTTP status class, or network).",
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

_statuses: dict[str, str] = {}


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


def exposition() -> bytes:
    """Return every metric in Prometheus' text format."""
    return generate_latest(REGISTRY)
