"""Configuration (2p): the naive durable receiver of (2) on PostgreSQL instead of SQLite.

HMAC check, json.loads, one INSERT committed per request through psycopg's async connection
pool (8 connections, as many as ours uses), on the same Starlette/uvicorn stack. On a server
with `fsync=on` and `synchronous_commit=on` the commit waits for the WAL flush before the
200; PostgreSQL itself shares one flush among the backends committing at the same moment.
What it lacks is batching on the client side: every request pays its own transaction.

Environment: NAIVE_SECRET (the `whsec_...` signing secret), NAIVE_DATABASE (a PostgreSQL URL).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from benchmarks.baselines.signature import verified

POOL_SIZE = 8
SECRET = os.environ["NAIVE_SECRET"].encode()
pool = AsyncConnectionPool(os.environ["NAIVE_DATABASE"], min_size=POOL_SIZE, open=False)


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    await pool.open(wait=True)
    async with pool.connection() as connection:
        await connection.execute(
            "CREATE TABLE IF NOT EXISTS events "
            "(id TEXT PRIMARY KEY, type TEXT, body TEXT, received DOUBLE PRECISION)"
        )
    yield
    await pool.close()


async def receive(request: Request) -> JSONResponse:
    """When an event arrives, check it, store it durably, then answer."""
    body = await request.body()
    if not verified(SECRET, body, request.headers.get("stripe-signature", "")):
        return JSONResponse({"error": "bad signature"}, status_code=400)
    event = json.loads(body)
    # Leaving the block commits the transaction the INSERT opened.
    async with pool.connection() as connection:
        await connection.execute(
            "INSERT INTO events VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
            (event["id"], event["type"], body.decode(), time.time()),
        )
    return JSONResponse({"received": True})


app = Starlette(
    routes=[Route("/webhooks/{namespace}/{name}", receive, methods=["POST"])], lifespan=lifespan
)
