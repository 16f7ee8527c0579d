"""An HTTP/1.1 protocol for uvicorn that lets the app drop a client's TCP connection.

ASGI gives an application no way to close a connection without answering: uvicorn turns an
app exception into a 500. Fault injection needs a real drop (the client sees a reset, as when
a load balancer dies), so this protocol puts its transport into the request scope.
"""

from __future__ import annotations

import asyncio
from collections.abc import MutableMapping
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

TRANSPORT = "emulator.transport"


class DroppableH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, exposing the connection's transport to the app."""

    def handle_events(self) -> None:
        super().handle_events()
        cycle = getattr(self, "cycle", None)
        if cycle is not None:
            # The request task is created but has not run yet, so the app sees this key.
            cycle.scope.setdefault("extensions", {})[TRANSPORT] = self.transport


async def drop(scope: MutableMapping[str, Any]) -> None:
    """Reset the client's connection now; the response the app returns later goes nowhere."""
    transport = scope.get("extensions", {}).get(TRANSPORT)
    if transport is None:
        raise RuntimeError("the server was not started with DroppableH11Protocol")
    transport.abort()
    # Let uvicorn see the connection as lost before the app returns its response.
    for _ in range(3):
        await asyncio.sleep(0)
