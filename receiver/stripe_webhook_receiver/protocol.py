"""uvicorn's httptools protocol, with the receiver's connection limits and JSON error bodies.

uvicorn bounds none of what a hostile client controls before the application runs: a
connection that never sends a byte, or sends its headers a byte at a time, is kept forever
(its keep-alive timer only starts after an answer, and any byte stops it); headers may grow
without end (httptools keeps the partial header in memory); a client that does not read its
answers blocks the connection for good; and connections are limited only by file
descriptors. This protocol adds, per connection (values from the receiver's `Settings`):

- the request line and headers must arrive within `client_timeout` seconds of connecting
  or of the previous answer: past it a connection that sent part of a request gets 408
  `request_timeout`, an idle one is closed;
- at most `max_header_bytes` of request line and headers, and at most `MAX_HEADERS` headers
  (each parsed header costs ~150 bytes of Python objects, so many small ones would hold
  several times their size while the head arrives): past either, 431 `header_too_large`;
- an answer the client does not take off the wire within `client_timeout` ends the
  connection;
- the bytes of bodies still arriving, across all connections, stay within
  `max_pending_body_bytes` (body_budget.py): past it, 503 `overloaded`;
- beyond `max_connections` open connections, a new one gets 503 `overloaded` and is closed
  at once, before it costs a request.

httptools refuses what it cannot parse (a method it does not know, such as `BREW`, a malformed
request line or header, broken chunked framing) before the application sees the request, and
uvicorn then answers a plain-text 400; this protocol answers in the receiver's JSON shape.
Every answer from here closes the connection. uvicorn's protocol class is internal API:
uvicorn is pinned in requirements/, and tests/reliability (test_receiver_fuzz.py,
test_hostile_connections.py) check these answers, so an upgrade that changes it fails there.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from stripe_webhook_receiver.body_budget import BodyBudget
from stripe_webhook_receiver.responses import JSON, OVERLOADED, RETRY_AFTER_SECONDS
from stripe_webhook_receiver.responses import fixed_response as encode
from stripe_webhook_receiver.settings import DEFAULT_MAX_PENDING_BODY_BYTES, Settings

# Stripe sends about ten headers; proxies add a few more.
MAX_HEADERS = 100


def _error(code: str, message: str) -> bytes:
    return encode({"error": {"code": code, "message": message}})


INVALID_REQUEST_BODY = _error(
    "invalid_http_request",
    "The request is not valid HTTP/1.1 (an unknown method, or a malformed request line, "
    "header or body framing); Stripe sends `POST` with a JSON body.",
)
OVERLOADED_BODY = _error("overloaded", OVERLOADED)


def _limit_answers(limits: Settings) -> tuple[bytes, bytes]:
    """The bodies of the 408 (head too slow) and 431 (head too large) answers."""
    head_timeout = _error(
        "request_timeout",
        f"The request line and headers did not arrive within {limits.client_timeout:g} s; "
        "send the whole request at once.",
    )
    header_too_large = _error(
        "header_too_large",
        f"The request line and headers are larger than {limits.max_header_bytes} bytes or "
        f"hold more than {MAX_HEADERS} headers; Stripe's are far smaller.",
    )
    return head_timeout, header_too_large


class ReceiverProtocol(HttpToolsProtocol):
    """HttpToolsProtocol with the limits in the module docstring; `with_limits` makes the
    class uvicorn is given."""

    limits: ClassVar[Settings] = Settings()
    budget: ClassVar[BodyBudget] = BodyBudget(DEFAULT_MAX_PENDING_BODY_BYTES)
    head_timeout_body, header_too_large_body = _limit_answers(Settings())

    @classmethod
    def with_limits(cls, limits: Settings) -> type[ReceiverProtocol]:
        """Return a subclass bound to `limits`, with a body budget of its own shared by all
        its connections and its answers encoded once (uvicorn builds the protocol itself)."""
        head_timeout, header_too_large = _limit_answers(limits)
        attributes = {
            "limits": limits,
            "budget": BodyBudget(limits.max_pending_body_bytes),
            "head_timeout_body": head_timeout,
            "header_too_large_body": header_too_large,
        }
        return cast("type[ReceiverProtocol]", type(cls.__name__, (cls,), attributes))

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._head_timer: asyncio.TimerHandle | None = None
        self._write_timer: asyncio.TimerHandle | None = None
        # Whether a request's line and headers are arriving (False between requests and once
        # the headers are complete), the bytes and headers received of them so far, and
        # whether any arrived since the head timer was armed.
        self._in_head = False
        self._head_bytes = 0
        self._header_count = 0
        self._head_started = False
        # Set once this protocol has answered and closed: the rest of the read is ignored.
        self._refused = False
        # The current request's body: bytes received, bytes taken from the budget, and
        # whether it is still arriving (headers complete, message not).
        self._body_bytes = 0
        self._body_taken = 0
        self._body_arriving = False

    # Connections ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.limits.max_connections:
            self._overloaded()
            return
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        self._cancel_write_timer()
        self._give_back_body()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.transport.is_closing():
            return
        # Counted after parsing: a chunk that completes the headers is no longer counted, and
        # one that leaves them incomplete is all head (less the end of an earlier request).
        if self._in_head:
            self._head_bytes += len(data)
            if self._head_bytes > self.limits.max_header_bytes:
                self._answer(b"431 Request Header Fields Too Large", self.header_too_large_body)
        elif self._body_arriving and self._body_bytes > self._body_taken:
            # Part of a body is held until the rest comes: it must fit in the budget.
            if not self.budget.take(self._body_bytes - self._body_taken):
                if self.cycle is not None:
                    self.cycle.body.clear()  # free what uvicorn holds for the app at once
                self._overloaded()
                return
            self._body_taken = self._body_bytes

    def send_400_response(self, msg: str) -> None:
        # `msg` is uvicorn's fixed text ("Invalid HTTP request received."): the body says more.
        self._answer(b"400 Bad Request", INVALID_REQUEST_BODY)

    # Parser callbacks ----------------------------------------------------------------------

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._give_back_body()
        self._in_head = True
        self._head_started = True
        self._head_bytes = 0
        self._header_count = 0

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._refused:
            return
        self._header_count += 1
        if self._header_count > MAX_HEADERS:
            self._answer(b"431 Request Header Fields Too Large", self.header_too_large_body)
            return
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._cancel_head_timer()
        if self._refused:
            return
        # A head that arrived in one read was never counted in `data_received`: measure it.
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)
        if size > self.limits.max_header_bytes:
            self._refused = True
            self._answer(b"431 Request Header Fields Too Large", self.header_too_large_body)
            return
        self._body_arriving = True
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        if self._refused:
            return
        if self.cycle is not None and not self.cycle.response_complete:
            self._body_bytes += len(body)  # held for the app (once answered, uvicorn drops it)
        super().on_body(body)

    def on_message_complete(self) -> None:
        if not self._refused:
            self._give_back_body()
            super().on_message_complete()

    def _give_back_body(self) -> None:
        """The current body is complete, or its request is over: release its bytes."""
        self.budget.give_back(self._body_taken)
        self._body_bytes = self._body_taken = 0
        self._body_arriving = False

    def on_response_complete(self) -> None:
        super().on_response_complete()
        # The next request's clock starts now, unless one is queued already (pipelining).
        if not self.pipeline and not self.transport.is_closing():
            self._arm_head_timer()

    # Writes --------------------------------------------------------------------------------

    def pause_writing(self) -> None:
        super().pause_writing()
        if self._write_timer is None:
            self._write_timer = self.loop.call_later(self.limits.client_timeout, self._abort)

    def resume_writing(self) -> None:
        self._cancel_write_timer()
        super().resume_writing()

    # Timers and answers --------------------------------------------------------------------

    def _arm_head_timer(self) -> None:
        self._cancel_head_timer()
        self._head_started = self._in_head
        self._head_timer = self.loop.call_later(self.limits.client_timeout, self._head_late)

    def _cancel_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _cancel_write_timer(self) -> None:
        if self._write_timer is not None:
            self._write_timer.cancel()
            self._write_timer = None

    def _head_late(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_started:
            self._answer(b"408 Request Timeout", self.head_timeout_body)
        else:
            self.transport.close()

    def _abort(self) -> None:
        self._write_timer = None
        self.transport.abort()

    def _overloaded(self) -> None:
        retry = b"retry-after: " + str(RETRY_AFTER_SECONDS).encode()
        self._answer(b"503 Service Unavailable", OVERLOADED_BODY, [retry])

    def _answer(self, status: bytes, body: bytes, extra: list[bytes] | None = None) -> None:
        """Write one JSON error answer and close the connection."""
        self._refused = True
        self._cancel_head_timer()
        lines = [b"HTTP/1.1 " + status]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: " + JSON.encode(),
            b"content-length: " + str(len(body)).encode(),
            b"connection: close",
            *(extra or []),
        ]
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + body)
        self.transport.close()
