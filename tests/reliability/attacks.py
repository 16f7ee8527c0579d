"""Hostile connections to the receiver, many at once, and honest deliveries beside them.

An attack runs `connections` clients on one asyncio loop (in a thread of its own) for
`seconds`: each client opens a connection, misbehaves in its attack's way, waits for the
receiver's answer or close, and starts over. Every client's wait is bounded: a connection that
gets neither an answer nor a close within the receiver's deadline plus a margin is a hang.
`HonestTraffic` meanwhile sends signed Stripe-shaped deliveries at a steady rate from another
thread and times each one as Stripe would see it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import http.client
import itertools
import json
import math
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from tests.receiver.payloads import signed, subscription_event

HOST = "127.0.0.1"
SERIALS = itertools.count(1)
STATUS_PREFIX = b"HTTP/1.1 "


@dataclass
class Tally:
    """What the hostile clients of one attack got."""

    opened: int = 0
    statuses: collections.Counter[int] = field(default_factory=collections.Counter)
    closed_unanswered: int = 0
    hangs: int = 0
    refused_connects: int = 0

    def answer(self, received: bytes) -> None:
        """Count every answer in `received` (pipelined ones too), or a bare close."""
        found = 0
        for part in received.split(STATUS_PREFIX)[1:]:
            code = part[:3]
            if code.isdigit():
                self.statuses[int(code)] += 1
                found += 1
        if not found:
            self.closed_unanswered += 1

    @property
    def server_errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status >= 500 and status != 503)


@dataclass(frozen=True)
class Target:
    """Where the attacks aim: the receiver's port, a webhook path, its deadlines."""

    port: int
    path: str
    client_timeout: float
    keep_alive_timeout: float
    margin: float = 5.0

    @property
    def deadline(self) -> float:
        return self.client_timeout + self.margin


Client = Callable[[Target, Tally], Awaitable[None]]


async def _wait_answer(reader: asyncio.StreamReader, seconds: float, expected: int = 1) -> bytes:
    """Read until the server closes, `expected` answers have arrived, or `seconds` pass (then
    raise TimeoutError)."""
    received = b""
    async with asyncio.timeout(seconds):
        while chunk := await reader.read(65536):
            received += chunk
            if received.count(STATUS_PREFIX) >= expected and received.endswith(b"}"):
                break
    return received


async def _connect(
    target: Target, tally: Tally
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    tally.opened += 1
    return await asyncio.open_connection(HOST, target.port)


async def _finish(
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
    target: Target,
    tally: Tally,
    seconds: float,
    expected: int = 1,
    feeding: asyncio.Task[None] | None = None,
) -> None:
    """Wait for the answer (or close) while `feeding` keeps sending; count it or a hang."""
    try:
        tally.answer(await _wait_answer(reader, seconds, expected))
    except TimeoutError:
        tally.hangs += 1
    except ConnectionError:
        tally.closed_unanswered += 1
    finally:
        if feeding is not None:
            feeding.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError):
                await feeding
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


def _head(target: Target, extra: str) -> bytes:
    return f"POST {target.path} HTTP/1.1\r\nHost: receiver\r\n{extra}\r\n".encode()


async def slow_body(target: Target, tally: Tally) -> None:
    """Announce a 100 kB body and send it a byte a second: the body deadline must end it."""
    reader, writer = await _connect(target, tally)
    writer.write(_head(target, "Content-Type: application/json\r\nContent-Length: 100000\r\n"))

    async def trickle() -> None:
        while True:
            writer.write(b"{")
            await writer.drain()
            await asyncio.sleep(1.0)

    feeding = asyncio.create_task(trickle())
    await _finish(reader, writer, target, tally, target.deadline, feeding=feeding)


BIG = b"x" * (512 * 1024)


async def stalled_large_body(target: Target, tally: Tally) -> None:
    """Send half of a 1 MB body at once, then nothing: the body budget must refuse most."""
    reader, writer = await _connect(target, tally)
    writer.write(_head(target, "Content-Length: 1000000\r\n"))
    await writer.drain()
    await asyncio.sleep(0.05)  # the request has started: the body arrives in pieces
    writer.write(BIG)
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    await _finish(reader, writer, target, tally, target.deadline)


async def idle_keep_alive(target: Target, tally: Tally) -> None:
    """Ask once on a keep-alive connection, then say nothing: it must be closed."""
    reader, writer = await _connect(target, tally)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: receiver\r\n\r\n")
    try:
        tally.answer(await _wait_answer(reader, target.deadline))
        # Now idle: the receiver closes the connection after its keep-alive timeout.
        async with asyncio.timeout(target.keep_alive_timeout + target.margin):
            while await reader.read(65536):
                pass
    except TimeoutError:
        tally.hangs += 1
    except ConnectionError:
        pass
    finally:
        writer.close()


HEADER_VARIANTS = (
    b"X-Big: " + b"a" * (64 * 1024) + b"\r\n\r\n",
    b"".join(b"X-Many-%05d: %s\r\n" % (i, b"v" * 24) for i in range(2000)) + b"\r\n",
)


async def oversized_headers(target: Target, tally: Tally) -> None:
    """Send a head past the header limit: one huge header, thousands of small ones, or one
    that never ends; each must get 431."""
    reader, writer = await _connect(target, tally)
    variant = tally.opened % 3
    writer.write(f"POST {target.path} HTTP/1.1\r\nHost: receiver\r\n".encode())
    feeding = None
    if variant < 2:
        writer.write(HEADER_VARIANTS[variant])
    else:

        async def endless() -> None:
            writer.write(b"X-Endless: ")
            while True:
                writer.write(b"e" * 16384)
                await writer.drain()

        feeding = asyncio.create_task(endless())
    await _finish(reader, writer, target, tally, target.deadline, feeding=feeding)
    await asyncio.sleep(0.5)  # an attacker that waits a little before trying again


async def endless_chunked(target: Target, tally: Tally) -> None:
    """A chunked body that never ends, sent fast (the size limit or the body budget must end
    it) or a chunk a second (the body deadline must)."""
    reader, writer = await _connect(target, tally)
    writer.write(_head(target, "Transfer-Encoding: chunked\r\n"))
    fast = tally.opened % 2 == 0

    async def chunks() -> None:
        while True:
            writer.write(b"2000\r\n" + b"c" * 0x2000 + b"\r\n" if fast else b"1\r\nc\r\n")
            await writer.drain()
            await asyncio.sleep(0.001 if fast else 1.0)

    feeding = asyncio.create_task(chunks())
    await _finish(reader, writer, target, tally, target.deadline, feeding=feeding)
    if fast:
        await asyncio.sleep(0.5)


PIPELINED = 10


async def pipelining(target: Target, tally: Tally) -> None:
    """Ten requests written at once on one connection (probes and unsigned deliveries), read
    back in order, then a pause; one client in a hundred pipelines thousands and never reads
    (the write deadline must drop it)."""
    if tally.opened % 100 == 99:
        await _never_reading(target, tally)
        return
    reader, writer = await _connect(target, tally)
    unsigned = _head(target, "Content-Length: 2\r\nStripe-Signature: t=1,v1=00\r\n") + b"{}"
    probe = b"GET /healthz HTTP/1.1\r\nHost: receiver\r\n\r\n"
    writer.write((probe + unsigned) * (PIPELINED // 2))
    await _finish(reader, writer, target, tally, target.deadline, expected=PIPELINED)
    await asyncio.sleep(target.client_timeout)  # then again, on a new connection


async def _never_reading(target: Target, tally: Tally) -> None:
    tally.opened += 1
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window, soon full
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (HOST, target.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.transport.set_write_buffer_limits(high=1 << 30)
    writer.write(b"GET /openapi.json HTTP/1.1\r\nHost: receiver\r\n\r\n" * 2000)
    await asyncio.sleep(target.deadline)
    # By now the receiver must have dropped the connection: what is left to read ends soon.
    try:
        async with asyncio.timeout(target.margin):
            while await reader.read(1 << 20):
                pass
        tally.closed_unanswered += 1
    except TimeoutError:
        tally.hangs += 1
    except ConnectionError:
        tally.closed_unanswered += 1
    finally:
        writer.close()


def run_attack(target: Target, client: Client, connections: int, seconds: float) -> Tally:
    """Run `connections` clients of `client` for `seconds` (each starting over until then),
    then let every client still waiting finish its wait; return what they got."""
    tally = Tally()

    async def worker(stop_at: float) -> None:
        while time.monotonic() < stop_at:
            try:
                await client(target, tally)
            except (ConnectionError, OSError):
                tally.refused_connects += 1
                await asyncio.sleep(0.2)

    async def main() -> None:
        stop_at = time.monotonic() + seconds
        workers = []
        for _ in range(connections):
            workers.append(asyncio.create_task(worker(stop_at)))
            await asyncio.sleep(0)  # stagger the connects a little
        await asyncio.gather(*workers)

    runner = threading.Thread(target=lambda: asyncio.run(main()), name="attack", daemon=True)
    runner.start()
    runner.join()
    return tally


@dataclass
class HonestTraffic:
    """Signed deliveries at `rate` per second to `path`, each for one of `subscriptions`
    (registered), each newer than the last; `latencies` and `outcomes` as the sender saw them."""

    port: int
    path: str
    secret: str
    subscriptions: list[str]
    rate: float = 20.0
    timeout: float = 30.0
    latencies: list[float] = field(default_factory=list)
    outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> HonestTraffic:
        self._thread = threading.Thread(target=self._run, name="honest", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout + 5)

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self._stop.is_set():
            self._send_one()
            next_at += 1.0 / self.rate
            self._stop.wait(max(0.0, next_at - time.monotonic()))

    def _send_one(self) -> None:
        serial = next(SERIALS)
        subscription = self.subscriptions[serial % len(self.subscriptions)]
        now = int(time.time())
        # Each delivery newer than the last for its subscription, across senders too.
        event = subscription_event(subscription, created=now, period_end=now + 10**6 + serial)
        body, headers = signed(event, [self.secret])
        started = time.perf_counter()
        connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            connection.request("POST", self.path, body, headers)
            response = connection.getresponse()
            answer = response.read()
            outcome = (
                json.loads(answer).get("outcome", "?")
                if response.status == 200
                else f"status {response.status}"
            )
        except (OSError, http.client.HTTPException, ValueError) as exc:
            outcome = type(exc).__name__
        finally:
            connection.close()
        self.latencies.append(time.perf_counter() - started)
        self.outcomes[outcome] += 1

    @property
    def sent(self) -> int:
        return sum(self.outcomes.values())

    @property
    def lost(self) -> int:
        return self.sent - self.outcomes["applied"]

    def p99_ms(self) -> float:
        ordered = sorted(self.latencies)
        return ordered[max(0, math.ceil(0.99 * len(ordered)) - 1)] * 1000 if ordered else 0.0
