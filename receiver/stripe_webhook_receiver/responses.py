"""JSON bodies the receiver answers with, errors in one shape: `{"error": {"code", "message"}}`,
and the pre-encoded answers of the hot path."""

from __future__ import annotations

import json
from typing import Any

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

JSON = "application/json"


def json_response(content: Any, status_code: int = 200) -> Response:
    """Return `content` as compact JSON."""
    body = json.dumps(content, separators=(",", ":")).encode()
    return Response(body, status_code=status_code, media_type=JSON)


def error_response(
    status_code: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response:
    """Return the error body every endpoint uses."""
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    return Response(body, status_code=status_code, media_type=JSON, headers=headers)


def fixed_response(content: Any) -> bytes:
    """Pre-encode a body answered often (the hot path does not serialize it again)."""
    return json.dumps(content, separators=(",", ":")).encode()


DATABASE_UNAVAILABLE = (
    "The database is unavailable; the delivery was not processed and should be retried."
)


class FixedAnswer:
    """A pre-encoded answer sent many times, with the headers Starlette's `Response` gives it.

    One `Response` shared by every request would hand each of them the same header list,
    which a middleware may edit in place; this sends a fresh copy each time.
    """

    def __init__(self, body: bytes, status_code: int = 200) -> None:
        self.status_code = status_code
        self.body = body
        self.headers = tuple(Response(body, status_code, media_type=JSON).raw_headers)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": [*self.headers]}
        )
        await send({"type": "http.response.body", "body": self.body})


OVERLOADED = (
    "The receiver is holding as many connections or unfinished request bodies as it allows; "
    "the delivery was not processed and should be retried."
)
# Seconds a client is asked to wait before retrying an `overloaded` answer.
RETRY_AFTER_SECONDS = 1
