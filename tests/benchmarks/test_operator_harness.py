"""The operator benchmark's harness on the local stack, with the no-op baseline and N=3.

It checks that the harness runs end to end and reports what it saw; it measures nothing and
asserts no timing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks import operator_bench

pytestmark = pytest.mark.integration


def test_quick_run_with_the_noop_baseline_reports_every_object_ready(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    rounds = operator_bench.main(
        ["--quick", "--sizes", "3", "--operators", "noop", "--output", str(doc)]
    )
    (only,) = rounds
    assert only.create.complete
    assert only.create.stripe_total == 0
    assert only.restart is not None
    assert only.create.rss_peak_kib > 0
    assert "| noop     | 3 |" in doc.read_text()


def test_rss_fit_is_a_least_squares_line() -> None:
    rounds = [
        operator_bench.Round("ours", n, 1, operator_bench.Phase(1.0, rss_peak_kib=1000 + 2 * n))
        for n in (10, 100, 500)
    ]
    assert operator_bench.rss_fit(rounds, "ours") == pytest.approx((1000.0, 2.0))
    assert operator_bench.rss_fit(rounds, "noop") is None


def test_floor_is_bound_by_the_busiest_account_or_the_operator_budget() -> None:
    spread = operator_bench.Phase(1.0, stripe_by_account={"a": 50, "b": 50})
    spread.stripe.update({"POST /v1/webhook_endpoints": 100})
    lopsided = operator_bench.Phase(1.0, stripe_by_account={"a": 100})
    lopsided.stripe.update({"POST /v1/webhook_endpoints": 100})
    assert operator_bench.floor_seconds(spread, 2) == 100 / operator_bench.OPERATOR_RATE
    assert operator_bench.floor_seconds(lopsided, 1) == 100 / operator_bench.EMULATOR_RATE
