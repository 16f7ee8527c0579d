"""Flags and environment variables, durations, conditions and the limiter."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator.cli import kopf_settings
from stripe_webhook_operator.exceptions import ConfigurationError
from stripe_webhook_operator.limiter import TokenBucket
from stripe_webhook_operator.settings import parse_settings
from stripe_webhook_operator.times import format_duration, parse_duration


def test_flags_default_and_env_and_flag_wins() -> None:
    settings = parse_settings([], {})
    assert settings.metrics_port == 8080
    assert settings.receiver_secret_name == "stripe-webhook-receiver-secrets"
    assert settings.clusterwide
    env = {
        "STRIPE_WEBHOOK_OPERATOR_RECEIVER_URL": "http://r:8000/",
        "STRIPE_WEBHOOK_OPERATOR_DRIFT_INTERVAL": "90s",
        "STRIPE_WEBHOOK_RECEIVER_NAMESPACE": "stripe-system",
        "STRIPE_API_BASE": "http://127.0.0.1:12111/",
    }
    from_env = parse_settings([], env)
    assert from_env.receiver_url == "http://r:8000"
    assert from_env.drift_interval == 90
    assert from_env.receiver_namespace == "stripe-system"
    assert from_env.stripe_api_base == "http://127.0.0.1:12111"
    assert parse_settings(["--drift-interval=5m"], env).drift_interval == 300


def test_namespaces_accept_commas_and_repeats() -> None:
    settings = parse_settings(["--namespace=a,b", "--namespace=c"], {})
    assert settings.namespaces == ("a", "b", "c")
    assert not settings.clusterwide


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["--drift-interval=soon"], "`--drift-interval`"),
        (["--receiver-service=svc"], "needs `--receiver-url`"),
        (["--receiver-url=http://r", "--receiver-service=bad"], "NAMESPACE/NAME"),
        (["--stripe-rate=-1"], "must not be negative"),
    ],
)
def test_bad_flags_say_what_to_write(argv: list[str], fragment: str) -> None:
    with pytest.raises(ConfigurationError, match=fragment):
        parse_settings(argv, {})


def test_kopf_scans_the_cluster_only_in_cluster_wide_mode() -> None:
    # Restricted to named namespaces, kopf must not list namespaces or watch CRDs: the
    # namespace-scoped install grants neither (tests/chart/test_operator_rbac.py).
    namespaced = kopf_settings(parse_settings(["--namespace=billing,shop"], {}))
    assert namespaced.scanning.disabled is True
    assert namespaced.peering.clusterwide is False
    clusterwide = kopf_settings(parse_settings([], {}))
    assert clusterwide.scanning.disabled is False
    assert clusterwide.peering.clusterwide is True


def test_durations() -> None:
    assert parse_duration("1h30m") == 5400
    assert parse_duration("0") == 0
    assert parse_duration("250ms") == 0.25
    assert format_duration(5400) == "1h30m"
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration("1d")


def test_condition_transition_time_moves_only_on_status_change() -> None:
    t1 = datetime(2026, 1, 1, tzinfo=UTC)
    t2 = datetime(2026, 1, 2, tzinfo=UTC)
    first = cond.merge(None, cond.failed("ApiKeyMissing", "m1"), 1, t1)
    same = cond.merge(first, cond.failed("StripeUnavailable", "m2"), 2, t2)
    ready = cond.find(same, "Ready")
    assert ready is not None
    assert ready["lastTransitionTime"] == "2026-01-01T00:00:00Z"
    assert ready["reason"] == "StripeUnavailable"
    assert ready["observedGeneration"] == 2
    flipped = cond.find(cond.merge(same, cond.ready(), 2, t2), "Ready")
    assert flipped is not None
    assert flipped["lastTransitionTime"] == "2026-01-02T00:00:00Z"
    assert [item["type"] for item in same] == ["Ready", "Synced"]


def test_token_bucket_spaces_calls_at_the_rate() -> None:
    now = [0.0]
    bucket = TokenBucket(rate=10, burst=2, clock=lambda: now[0])
    assert bucket.try_take() == 0
    assert bucket.try_take() == 0
    assert bucket.try_take() == pytest.approx(0.1)
    now[0] += 0.1
    assert bucket.try_take() == 0


async def test_token_bucket_acquire_waits_for_a_token() -> None:
    bucket = TokenBucket(rate=50, burst=1)
    loop = asyncio.get_running_loop()
    start = loop.time()
    for _ in range(3):
        await bucket.acquire()
    assert loop.time() - start >= 0.035


def test_max_passes_follow_the_stripe_rate_unless_given() -> None:
    assert parse_settings([], {}).pass_limit == 60  # 3 x the default 20 requests/s
    assert parse_settings(["--stripe-rate=25"], {}).pass_limit == 75
    assert parse_settings(["--stripe-rate=1", "--stripe-burst=10"], {}).pass_limit == 10
    assert parse_settings(["--max-passes=8"], {}).pass_limit == 8
    env = {"STRIPE_WEBHOOK_OPERATOR_MAX_PASSES": "12"}
    assert parse_settings([], env).pass_limit == 12
    assert parse_settings(["--max-passes=auto"], env).pass_limit == 60


@pytest.mark.parametrize("value", ["0", "-3", "many", "2.5"])
def test_bad_max_passes_say_what_to_write(value: str) -> None:
    with pytest.raises(ConfigurationError, match="at least 1 or 'auto'"):
        parse_settings([f"--max-passes={value}"], {})
