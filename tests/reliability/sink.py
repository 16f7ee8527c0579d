"""An HTTP endpoint on 127.0.0.1 that answers 200 to every POST and records it (path, body,
`Stripe-Signature`), for checking what the Stripe emulator delivers to operator-made endpoints."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar


@dataclass(frozen=True)
class Delivery:
    path: str
    body: bytes
    signature: str


class _Handler(BaseHTTPRequestHandler):
    received: ClassVar[list[Delivery]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        signature = self.headers.get("Stripe-Signature", "")
        type(self).received.append(Delivery(self.path, body, signature))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, format: str, *args: object) -> None:
        return


class Sink:
    """`start()` it, point endpoints at `url + '/<anything>'`, read `received`."""

    def __init__(self) -> None:
        handler = type("SinkHandler", (_Handler,), {"received": []})
        self.received: list[Delivery] = handler.received
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Sink:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def at(self, path: str) -> list[Delivery]:
        """Deliveries received at `path`, oldest first."""
        return [d for d in list(self.received) if d.path == path]
