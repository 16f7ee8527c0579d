"""Configuration (2): the durable receiver a careful developer writes in an afternoon.

HMAC check, json.loads, one SQLite insert committed per request (WAL, synchronous=FULL, so
the event is on disk before the 200), on the same Starlette/uvicorn stack as ours. Its limit
is one fsync per request, which is what the comparison is about.

Environment: NAIVE_SECRET (the `whsec_...` signing secret), NAIVE_DATABASE (a file path).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import sqlite3
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

TOLERANCE = 300
SECRET = os.environ["NAIVE_SECRET"].encode()
connection = sqlite3.connect(os.environ["NAIVE_DATABASE"], isolation_level=None)
connection.execute("PRAGMA journal_mode=WAL")
connection.execute("PRAGMA synchronous=FULL")
connection.execute(
    "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, type TEXT, body TEXT, received REAL)"
)


def verified(body: bytes, header: str) -> bool:
    """Return whether one `v1` entry of the header signs `body` within the tolerance."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in fields if key == "t"]
    if not stamps or not stamps[0].isdigit() or abs(time.time() - int(stamps[0])) > TOLERANCE:
        return False
    expected = hmac.new(SECRET, stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, value in fields if key == "v1")


async def receive(request: Request) -> JSONResponse:
    """When an event arrives, check it, store it durably, then answer."""
    body = await request.body()
    if not verified(body, request.headers.get("stripe-signature", "")):
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
