"""Reading a request body: streamed under a size limit, whatever Content-Length says, and
within a deadline, so a slow or oversized client cannot hold a request open. Shared by every
endpoint that takes a body (deliveries, receipts)."""

from __future__ import annotations

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from stripe_webhook_receiver.deadlines import within
from stripe_webhook_receiver.settings import DEFAULT_CLIENT_TIMEOUT

# Seconds a client may take to send its whole body before we give up on it (the receiver
# passes its `--client-timeout`).
BODY_TIMEOUT = float(DEFAULT_CLIENT_TIMEOUT)


class BodyTooLarge(Exception):
    """The request body grew past the limit while we read it."""


async def read_body(receive: Receive, limit: int, seconds: float = BODY_TIMEOUT) -> bytes:
    """Read the body, counting the bytes as they stream in, whatever Content-Length says.

    Raises BodyTooLarge past `limit` bytes, TimeoutError if the whole body takes longer
    than `seconds` (a slow client cannot hold a request open) and ClientDisconnect if the
    client goes away first. Messages are read as Starlette's `Request.stream()` reads them.
    (What unfinished bodies hold across requests is bounded in protocol.py.)
    """
    return await within(seconds, _read_body(receive, limit))


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message["type"]
        if kind == "http.request":
            chunk: bytes = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            more = message.get("more_body", False)
            if not chunks and not more:
                # The usual case: the whole body came in one message; no copy.
                return chunk
            chunks.append(chunk)
            if not more:
                return b"".join(chunks)
        elif kind == "http.disconnect":
            raise ClientDisconnect
