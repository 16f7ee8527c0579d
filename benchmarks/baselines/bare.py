"""Configuration (1): bare Starlette answering 200, the ceiling of the framework we build on.

It reads the body, as any webhook receiver must, and does nothing else.
"""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def receive(request: Request) -> Response:
    """When an event arrives, read it and answer 200."""
    await request.body()
    return Response(b'{"received": true}', media_type="application/json")


app = Starlette(routes=[Route("/webhooks/{namespace}/{name}", receive, methods=["POST"])])
