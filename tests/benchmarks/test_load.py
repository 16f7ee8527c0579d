"""The load generators and the receiver harness against the bare baseline, for about a second.

These check that the harness works end to end; they measure nothing and assert no timing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from benchmarks.configurations import BareStarlette, Placement, Running
from benchmarks.events import subscription_ids, write_pool
from benchmarks.loadgen import run_load
from benchmarks.wrk import run_wrk

from benchmarks import receiver_bench

pytestmark = pytest.mark.integration


@pytest.fixture
def bare(tmp_path: Path) -> Iterator[tuple[BareStarlette, Running]]:
    config = BareStarlette(tmp_path, Placement([], None, None))
    running = config.start(0, [])
    try:
        yield config, running
    finally:
        running.stop()


@pytest.fixture
def pool(tmp_path: Path, bare: tuple[BareStarlette, Running]) -> Path:
    config, _ = bare
    return write_pool(config.pool_spec(subscription_ids(4)), 200, tmp_path / "pool.txt")


def test_wrk_posts_the_pool_and_reports_statuses(
    bare: tuple[BareStarlette, Running], pool: Path
) -> None:
    _, running = bare
    result = run_wrk(pool, running.ports, connections=2, seconds=1)
    assert result.requests > 0
    # wrk calls request() once on its first thread to check the script: that event is
    # never sent.
    assert min(result.requests, 199) <= result.statuses[200] <= 200
    assert result.errors == 0


def test_wrk_sends_each_event_once_then_requests_no_event(tmp_path: Path) -> None:
    config = BareStarlette(tmp_path, Placement([], None, None))
    running = config.start(1, [])
    try:
        tiny = write_pool(config.pool_spec(subscription_ids(2)), 10, tmp_path / "tiny.txt")
        result = run_wrk(tiny, running.ports, connections=2, seconds=1)
    finally:
        running.stop()
    assert result.statuses[200] in (9, 10)  # 9: wrk's check of the script took one
    assert result.exhausted > 0
    # Requests in flight when wrk stops (one per connection at most) go unanswered.
    assert result.statuses[404] <= result.exhausted <= result.statuses[404] + 2


async def test_closed_loop_generator_gets_answers(
    bare: tuple[BareStarlette, Running], pool: Path
) -> None:
    _, running = bare
    result = await run_load(pool, running.ports, seconds=1, connections=2)
    assert result.requests > 0
    assert result.statuses == {200: result.ok}
    assert result.failed == 0


async def test_generators_stop_at_the_end_of_the_pool(
    bare: tuple[BareStarlette, Running], tmp_path: Path
) -> None:
    config, running = bare
    tiny = write_pool(config.pool_spec(subscription_ids(2)), 10, tmp_path / "tiny.txt")
    closed = await run_load(tiny, running.ports, seconds=1, connections=2)
    assert (closed.requests, closed.ok) == (10, 10)
    assert closed.exhausted > 0
    opened = await run_load(tiny, running.ports, seconds=1, connections=2, rate=40)
    assert (opened.requests, opened.ok, opened.exhausted) == (10, 10, 30)


async def test_open_loop_generator_sends_at_the_rate_asked(
    bare: tuple[BareStarlette, Running], pool: Path
) -> None:
    _, running = bare
    result = await asyncio.wait_for(
        run_load(pool, running.ports, seconds=1, connections=2, rate=50), timeout=30
    )
    assert result.requests == 50
    assert result.statuses == {200: 50}


def test_receiver_benchmark_quick_run_writes_its_section(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    results = receiver_bench.main(["--quick", "--only", "bare", "--output", str(doc)])
    text = doc.read_text()
    assert len(results.runs["bare"]) == 1
    assert "(1) bare Starlette, 200" in text
    assert "## Receiver" in text
