"""kopf's connection pool to the API server is bounded: many requests at once share at most
`limit` connections (kopf's own pool has no bound: one TLS connection per request, each with
its buffers), and each carries the credentials of the `kubernetes` client's configuration."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import kopf
import pytest

from stripe_webhook_operator import kopf_login

RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class HoldingServer:
    """An HTTP/1.1 server on 127.0.0.1 that holds every request until `release_at`
    connections are open at once (or it is told to), then answers them all; it records how
    many connections were open at most and the Authorization headers it saw."""

    def __init__(self, release_at: int) -> None:
        self.release_at = release_at
        self.open = 0
        self.most_open = 0
        self.authorizations: set[str] = set()
        self.released = asyncio.Event()
        self.server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._connection, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.most_open = max(self.most_open, self.open)
        if self.open >= self.release_at:
            self.released.set()
        try:
            while head := await reader.readuntil(b"\r\n\r\n"):
                for line in head.decode().split("\r\n"):
                    if line.lower().startswith("authorization:"):
                        self.authorizations.add(line.split(":", 1)[1].strip())
                await self.released.wait()
                writer.write(RESPONSE)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            self.open -= 1
            writer.close()


async def fire(session: aiohttp.ClientSession, url: str, count: int) -> list[int]:
    async def one() -> int:
        async with session.get(url) as response:
            await response.read()
            return response.status

    return await asyncio.gather(*(one() for _ in range(count)))


def test_the_bound_leaves_room_for_every_watch_stream_beyond_the_requests() -> None:
    per = kopf_login.STREAMS_PER_NAMESPACE
    assert kopf_login.connection_limit((), requests=32) == 32 + per
    assert kopf_login.connection_limit(("a", "b", "c"), requests=32) == 32 + 3 * per


async def test_many_requests_at_once_share_at_most_the_bound_of_connections() -> None:
    limit = 6
    server = HoldingServer(release_at=limit)
    base = await server.start()
    info = kopf.ConnectionInfo(server=base, scheme="Bearer", token="t0ken")
    context = kopf_login.bounded_session(info, limit)
    try:
        # Were the pool unbounded, 40 held requests would open 40 connections before any
        # answer came back.
        statuses = await asyncio.wait_for(fire(context.aiohttp_session, base + "/api", 40), 30)
    finally:
        await context.aiohttp_session.close()
        await server.stop()
    assert statuses == [200] * 40
    assert server.most_open == limit
    assert server.authorizations == {"Bearer t0ken"}
    assert context.server == base


async def test_the_login_handler_gives_kopf_the_clients_credentials_in_a_bounded_session(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    info = kopf.ConnectionInfo(server="https://api.example:6443", token="t", default_namespace="x")
    monkeypatch.setattr(kopf, "login_via_client", lambda **_: info)
    login = kopf_login.login_handler(("shop", "billing"))
    context: Any = await login(logger=None, settings=None)
    try:
        assert isinstance(context, kopf.AiohttpSession)
        assert (context.server, context.default_namespace) == (info.server, "x")
        assert context.aiohttp_session.connector.limit == kopf_login.connection_limit(
            ("shop", "billing")
        )
    finally:
        await context.aiohttp_session.close()


async def test_no_credentials_found_means_no_session(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kopf, "login_via_client", lambda **_: None)
    assert await kopf_login.login_handler(())(logger=None, settings=None) is None
