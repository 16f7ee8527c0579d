"""The operator's metrics for alerts: the rotation step each webhook is in and since when, the
last successful pass, 429s apart from other 4xx, and the series that exist from the start."""

from __future__ import annotations

from stripe_webhook_operator import metrics
from stripe_webhook_operator.stripe_api import call_outcome

STEP = "stripe_webhook_operator_rotation_step_started_timestamp_seconds"


def step_started(webhook: str, step: str) -> float | None:
    value = metrics.REGISTRY.get_sample_value(STEP, {"webhook": webhook, "step": step})
    return None if value is None else float(value)


def test_a_step_seen_again_keeps_the_time_it_was_first_seen() -> None:
    metrics.record_rotation_step("billing/steady", "Propagating", 1000.0)
    metrics.record_rotation_step("billing/steady", "Propagating", 1060.0)
    assert step_started("billing/steady", "Propagating") == 1000.0


def test_the_next_step_replaces_the_series_and_idle_removes_it() -> None:
    metrics.record_rotation_step("billing/moving", "Creating", 10.0)
    metrics.record_rotation_step("billing/moving", "Enabling", 12.0)
    assert step_started("billing/moving", "Creating") is None
    assert step_started("billing/moving", "Enabling") == 12.0
    metrics.record_rotation_step("billing/moving", None, 13.0)
    assert step_started("billing/moving", "Enabling") is None
    assert 'webhook="billing/moving"' not in metrics.exposition().decode()


def test_only_a_pass_that_leaves_the_webhook_ready_moves_the_last_success() -> None:
    ok = metrics.REGISTRY.get_sample_value(
        "stripe_webhook_operator_reconciles_total", {"outcome": "ok"}
    )
    metrics.record_pass("billing/a", True, None, 5000.0)
    metrics.record_pass("billing/a", False, "Creating", 5100.0)
    last = metrics.REGISTRY.get_sample_value(
        "stripe_webhook_operator_last_successful_reconcile_timestamp_seconds"
    )
    assert last == 5000.0
    after = metrics.REGISTRY.get_sample_value(
        "stripe_webhook_operator_reconciles_total", {"outcome": "ok"}
    )
    assert after == (ok or 0) + 1
    assert step_started("billing/a", "Creating") == 5100.0
    metrics.record_rotation_step("billing/a", None, 5200.0)


def test_the_start_publishes_the_drift_interval_and_starts_the_wait() -> None:
    metrics.record_start(7000.0, 300.0)
    sample = metrics.REGISTRY.get_sample_value
    assert sample("stripe_webhook_operator_drift_interval_seconds") == 300.0
    assert sample("stripe_webhook_operator_last_successful_reconcile_timestamp_seconds") == 7000.0


def test_the_alerted_error_reason_exists_before_its_first_error() -> None:
    text = metrics.exposition().decode()
    assert 'stripe_webhook_operator_errors_total{reason="EndpointDisabledByStripe"}' in text


def test_rate_limits_are_counted_apart_from_other_refusals() -> None:
    assert call_outcome(429) == "429"
    assert call_outcome(400) == "4xx"
    assert call_outcome(404) == "4xx"
    assert call_outcome(503) == "5xx"
    assert call_outcome(None) == "network"


RECOVERY_SERIES = (
    "stripe_webhook_operator_recovery_gaps_open",
    "stripe_webhook_operator_recovery_oldest_gap_seconds",
    "stripe_webhook_operator_events_recovered_total",
    "stripe_webhook_operator_recovery_beyond_retention_total",
)


def test_a_webhooks_recovery_series_exist_from_its_first_pass_counters_at_zero() -> None:
    labels = {"namespace": "billing", "webhook": "gaps"}
    metrics.record_gaps("billing", "gaps", 2, 90.0)
    sample = metrics.REGISTRY.get_sample_value
    assert sample("stripe_webhook_operator_recovery_gaps_open", labels) == 2
    assert sample("stripe_webhook_operator_recovery_oldest_gap_seconds", labels) == 90.0
    assert sample("stripe_webhook_operator_events_recovered_total", labels) == 0
    assert sample("stripe_webhook_operator_recovery_beyond_retention_total", labels) == 0
    metrics.EVENTS_RECOVERED.labels(**labels).inc(3)
    metrics.record_gaps("billing", "gaps", 0, 0.0)
    assert sample("stripe_webhook_operator_recovery_gaps_open", labels) == 0
    assert sample("stripe_webhook_operator_events_recovered_total", labels) == 3


def test_a_webhook_no_longer_handled_leaves_no_recovery_series() -> None:
    metrics.record_gaps("billing", "gone", 1, 5.0)
    metrics.forget_gaps("billing", "gone")
    text = metrics.exposition().decode()
    for name in RECOVERY_SERIES:
        assert f'{name}{{namespace="billing",webhook="gone"}}' not in text
    metrics.forget_gaps("billing", "never-seen")  # nothing to drop: no error
