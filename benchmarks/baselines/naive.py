"""Configuration (2): the durable receiver a careful developer writes in an afternoon.

HMAC check, json.loads, one SQLite insert committed per request (WAL, synchronous=FULL, so
the event is on disk before the 200), on the same Starlette/uvicorn stack as ours. Its limit
is one fsync per request, which is what the comparison is about.

Environment: NAIVE_SECRET (the `whsec_...` signing secret), NAIVE_DATABASE (a file path).
"""

from __future__ import annotations

import json
import os
import sqlite3
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.baselines.signature import verified

SECRET = os.environ["NAIVE_SECRET"].encode()
connection = sqlite3.connect(os.environ["NAIVE_DATABASE"], isolation_level=None)
connection.execute("PRAGMA journal_mode=WAL")
connection.execute("PRAGMA synchronous=FULL")
connection.execute(
    "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT, body TEXT, received REAL)"
)


async def receive(request: Request) -> JSONResponse:
    """When an event arrives, check it, store it durably, then answer."""
    body = await request.body()
    if not verified(SECRET, body, request.headers.get("stripe-signature", "")):
        return JSONResponse({"error": "bad signature"}, status_code=400)
    event = json.loads(body)
    with connection:
        connection.execute("BEGIN")
        connection.execute(
            "INSERT OR IGNORE INTO events VALUES (?, ?, ?, ?)",
            (event["id"], event["type"], body.decode(), time.time()),
        )
    return JSONResponse({"received": True})


app = Starlette(routes=[Route("/webhooks/{namespace}/{name}", receive, methods=["POST"])])
