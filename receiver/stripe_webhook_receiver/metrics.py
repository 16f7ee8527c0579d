"""Prometheus metrics of one receiver, in a registry of its own (one per app instance).

Label values come only from bounded sets: webhook names the receiver has loaded (never a
path an unknown client sent), event types from verified events, fixed outcome and reason
codes. No label ever carries a secret, a key or a payload.
"""

from __future__ import annotations

from collections.abc import Collection

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stripe_webhook_receiver.events import SUBSCRIPTION_DELETED, SUBSCRIPTION_UPDATED

PREFIX = "stripe_webhook_receiver"
UNKNOWN_WEBHOOK = "unknown"
# The `type` label of a refused delivery whose type the receiver does not handle: the body
# verified, but a label of whatever string it carries would give one series per string.
OTHER_EVENT_TYPE = "other"
LABELLED_EVENT_TYPES = frozenset({SUBSCRIPTION_UPDATED, SUBSCRIPTION_DELETED})


def event_type_label(event_type: str | None) -> str:
    """Return the `type` label for an event type: itself if the receiver knows it, `other` if
    not, empty when the delivery was refused before its type was read."""
    if not event_type:
        return ""
    return event_type if event_type in LABELLED_EVENT_TYPES else OTHER_EVENT_TYPE


class Metrics:
    """The receiver's counters, histogram and gauges."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        # `labels()` takes a lock, checks the values and looks them up on every call; the hot
        # path asks for the same few children again and again, so `delivery()` keeps them.
        # The cache holds the same label sets the counter itself keeps: no more memory.
        self._delivery_children: dict[tuple[str, str, str], Counter] = {}
        self.deliveries = Counter(
            f"{PREFIX}_deliveries",
            "Webhook deliveries answered, by webhook, event type and outcome.",
            ["webhook", "type", "outcome"],
            registry=self.registry,
        )
        self.verification_failures = Counter(
            f"{PREFIX}_verification_failures",
            "Deliveries whose Stripe-Signature did not verify, by webhook and reason.",
            ["webhook", "reason"],
            registry=self.registry,
        )
        self.processing_seconds = Histogram(
            f"{PREFIX}_processing_seconds",
            "Time from the end of the request body to the answer, for verified deliveries.",
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
            registry=self.registry,
        )
        self.secret_reloads = Counter(
            f"{PREFIX}_secret_reloads",
            "Times the secrets directory changed and was read again.",
            registry=self.registry,
        )
        self.secret_reload_errors = Counter(
            f"{PREFIX}_secret_reload_errors",
            "Webhook files that could not be read at a reload, by file.",
            ["file"],
            registry=self.registry,
        )
        self.secret_files_broken = Gauge(
            f"{PREFIX}_secret_files_broken",
            "Webhook files that did not parse at the last reload (their last good set is kept).",
            registry=self.registry,
        )
        self.webhooks_loaded = Gauge(
            f"{PREFIX}_webhooks_loaded",
            "Webhooks whose configuration is loaded.",
            registry=self.registry,
        )
        self.database_up = Gauge(
            f"{PREFIX}_database_up",
            "1 while the database is migrated and answers a query, 0 while it does not.",
            registry=self.registry,
        )
        self.receipts = Counter(
            f"{PREFIX}_receipts",
            "Receipt registrations, by webhook and result.",
            ["webhook", "result"],
            registry=self.registry,
        )
        self.replayed_deliveries = Counter(
            f"{PREFIX}_replayed_deliveries",
            "Deliveries held for a missing receipt and replayed when it was registered.",
            ["webhook"],
            registry=self.registry,
        )

    def loaded(self, webhooks: Collection[str]) -> None:
        """When the secrets directory was read, publish how many webhooks it holds, and give
        each its replay counter at 0: an alert compares the counter's increase with held
        deliveries, and a counter that first appears already at 1 shows `rate()` no increase."""
        self.webhooks_loaded.set(len(webhooks))
        for webhook in webhooks:
            self.replayed_deliveries.labels(webhook)

    def delivery(self, webhook: str, event_type: str, outcome: str) -> Counter:
        """Return the `deliveries` counter child for these labels (what `labels()` returns)."""
        key = (webhook, event_type, outcome)
        child = self._delivery_children.get(key)
        if child is None:
            child = self._delivery_children[key] = self.deliveries.labels(*key)
        return child
