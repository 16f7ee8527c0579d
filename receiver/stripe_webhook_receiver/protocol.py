"""uvicorn's httptools protocol, with the receiver's JSON error body for unparseable requests.

httptools refuses what it cannot parse (a method it does not know, such as `BREW`, a malformed
request line or header, broken chunked framing) before the application sees the request, and
uvicorn then answers a plain-text 400. Every other answer of the receiver is a JSON error with
a code, so this protocol answers those too in that shape. uvicorn's protocol class is internal
API: uvicorn is pinned in requirements/, and tests/reliability/test_receiver_fuzz.py checks the
answer, so an upgrade that changes it fails there.
"""

from __future__ import annotations

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from stripe_webhook_receiver.responses import JSON, fixed_response

INVALID_REQUEST_BODY = fixed_response(
    {
        "error": {
            "code": "invalid_http_request",
            "message": "The request is not valid HTTP/1.1 (an unknown method, or a malformed "
            "request line, header or body framing); Stripe sends `POST` with a JSON body.",
        }
    }
)


class JsonErrorProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose parser-error answer is a JSON 400 (the connection then closes)."""

    def send_400_response(self, msg: str) -> None:
        # `msg` is uvicorn's fixed text ("Invalid HTTP request received."): the body says more.
        lines = [b"HTTP/1.1 400 Bad Request"]
        lines += [name + b": " + value for name, value in self.server_state.default_headers]
        lines += [
            b"content-type: " + JSON.encode(),
            b"content-length: " + str(len(INVALID_REQUEST_BODY)).encode(),
            b"connection: close",
        ]
        self.transport.write(b"\r\n".join(lines) + b"\r\n\r\n" + INVALID_REQUEST_BODY)
        self.transport.close()
