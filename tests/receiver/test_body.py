"""Reading a request body: the size limit counts streamed bytes, slow bodies time out; and the
budget that bodies arriving in pieces share (protocol.py applies it per read)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.requests import ClientDisconnect
from starlette.types import Message, Receive

from stripe_webhook_receiver.bodies import BodyTooLarge, read_body
from stripe_webhook_receiver.body_budget import BodyBudget


def receiver(chunks: list[bytes], *, stall: bool = False, disconnect: bool = False) -> Receive:
    """The `receive` of a request whose body arrives in `chunks`, then (if `stall`) never
    finishes, or (if `disconnect`) whose client goes away."""
    messages: Iterator[bytes] = iter(chunks)

    async def receive() -> Message:
        chunk = next(messages, None)
        if chunk is None:
            if stall:
                await asyncio.sleep(3600)
            if disconnect:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    return receive


async def test_the_limit_counts_bytes_received_not_the_declared_length() -> None:
    with pytest.raises(BodyTooLarge):
        await read_body(receiver([b"x" * 600, b"x" * 600]), 1000)
    assert await read_body(receiver([b"a" * 500, b"b" * 500]), 1000) == b"a" * 500 + b"b" * 500


async def test_a_body_that_stalls_times_out() -> None:
    with pytest.raises(TimeoutError):
        await read_body(receiver([b"partial"], stall=True), 1000, seconds=0.2)


async def test_a_client_that_leaves_mid_body_is_a_disconnect() -> None:
    with pytest.raises(ClientDisconnect):
        await read_body(receiver([b"partial"], disconnect=True), 1000)


async def test_a_body_in_one_message_and_an_empty_body() -> None:
    async def whole() -> Message:
        return {"type": "http.request", "body": b"all of it", "more_body": False}

    async def empty() -> Message:
        return {"type": "http.request"}

    assert await read_body(whole, 1000) == b"all of it"
    assert await read_body(empty, 1000) == b""
    with pytest.raises(BodyTooLarge):
        await read_body(whole, 8)


def test_the_budget_refuses_what_does_not_fit_and_takes_back_what_is_given() -> None:
    budget = BodyBudget(1000)
    assert budget.take(600)
    assert not budget.take(401)
    assert budget.held == 600  # a refusal takes nothing
    assert budget.take(400)
    budget.give_back(600)
    assert budget.take(600)
    assert budget.held == 1000
