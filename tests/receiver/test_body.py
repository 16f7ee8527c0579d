"""Reading a request body: the size limit counts streamed bytes, and slow bodies time out."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from starlette.requests import Request
from starlette.types import Message

from stripe_webhook_receiver.deliveries import BodyTooLarge, read_body


def request(chunks: list[bytes], *, stall: bool = False, content_length: int = 10) -> Request:
    """A request whose body arrives in `chunks`, then (if `stall`) never finishes."""
    messages: Iterator[bytes] = iter(chunks)

    async def receive() -> Message:
        chunk = next(messages, None)
        if chunk is None:
            if stall:
                await asyncio.sleep(3600)
            return {"type": "http.request", "body": b"", "more_body": False}
        return {"type": "http.request", "body": chunk, "more_body": True}

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-length", str(content_length).encode())],
    }
    return Request(scope, receive)


async def test_the_limit_counts_bytes_received_not_the_declared_length() -> None:
    with pytest.raises(BodyTooLarge):
        await read_body(request([b"x" * 600, b"x" * 600], content_length=10), 1000)
    assert await read_body(request([b"a" * 500, b"b" * 500]), 1000) == b"a" * 500 + b"b" * 500


async def test_a_body_that_stalls_times_out() -> None:
    with pytest.raises(TimeoutError):
        await read_body(request([b"partial"], stall=True), 1000, seconds=0.2)
