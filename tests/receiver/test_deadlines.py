"""Body-read time limits sharing one timer per loop: late reads end in TimeoutError, others
finish, and a cancellation from outside stays a cancellation."""

from __future__ import annotations

import asyncio

import pytest

from stripe_webhook_receiver.deadlines import within


async def finishes_after(seconds: float, value: str) -> str:
    await asyncio.sleep(seconds)
    return value


async def test_only_the_reads_past_their_deadline_time_out() -> None:
    results = await asyncio.gather(
        within(0.5, finishes_after(0.01, "quick")),
        within(0.1, finishes_after(5, "never")),
        within(5, finishes_after(0.3, "slow but allowed")),
        within(0.2, finishes_after(5, "never either")),
        return_exceptions=True,
    )
    assert results[0] == "quick"
    assert isinstance(results[1], TimeoutError)
    assert results[2] == "slow but allowed"
    assert isinstance(results[3], TimeoutError)


async def test_the_timer_serves_reads_started_after_it_fired() -> None:
    with pytest.raises(TimeoutError):
        await within(0.05, finishes_after(5, "never"))
    # The task is not left cancelled: it goes on awaiting.
    assert await within(1, finishes_after(0.01, "next")) == "next"
    with pytest.raises(TimeoutError):
        await within(0.05, finishes_after(5, "never"))


async def test_a_cancellation_from_outside_stays_a_cancellation() -> None:
    task = asyncio.create_task(within(5, finishes_after(5, "never")))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_errors_of_the_read_pass_through() -> None:
    async def fails() -> None:
        raise ValueError("read failed")

    with pytest.raises(ValueError, match="read failed"):
        await within(1, fails())
    assert await within(1, finishes_after(0, "after")) == "after"
