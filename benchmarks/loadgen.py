"""A bounded Python load generator: closed loop, or open loop at a fixed rate.

wrk drives the saturation runs; this drives the fixed-rate runs (p99 at half of saturation),
which wrk cannot pace. In open loop each request has a scheduled send time and its latency is
counted from that time, so a stalled server is charged for the requests queued behind the
stall (no coordinated omission). An event is never sent twice: when the pool runs out the
generator stops sending and counts the requests it did not send as `exhausted`. Run as a
separate process, pinned to its own core:

    python -m benchmarks.loadgen --pool FILE --ports 8000,8001 --rate 800 --seconds 5

prints one JSON object (a LoadResult).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import math
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from benchmarks.events import read_pool
from benchmarks.measurements import LoadResult, percentile

READ_TIMEOUT = 10.0
MAX_HEADER_BYTES = 64 * 1024


class ResponseError(RuntimeError):
    """The server's answer could not be read as HTTP/1.1."""


def format_request(path: str, signature: str, body: bytes) -> bytes:
    """Return the bytes of one keep-alive POST of `body` to `path`."""
    head = (
        f"POST {path} HTTP/1.1\r\n"
        "Host: 127.0.0.1\r\n"
        "Content-Type: application/json; charset=utf-8\r\n"
        f"Stripe-Signature: {signature}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bool]:
    """Read one response; return its status and whether the server keeps the connection."""
    head = await reader.readuntil(b"\r\n\r\n")
    if len(head) > MAX_HEADER_BYTES:
        raise ResponseError("response headers too large")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    else:
        await reader.readexactly(int(headers.get("content-length", "0")))
    return status, headers.get("connection", "").lower() != "close"


@dataclasses.dataclass
class Tally:
    """Latencies and outcomes gathered by all connections of one run."""

    latencies: list[float] = dataclasses.field(default_factory=list)
    statuses: dict[int, int] = dataclasses.field(default_factory=dict)
    errors: int = 0

    def record(self, status: int, latency: float) -> None:
        self.statuses[status] = self.statuses.get(status, 0) + 1
        self.latencies.append(latency)


Item = tuple[float, bytes]


async def _connection(
    port: int, next_item: Callable[[], Awaitable[Item | None]], tally: Tally
) -> None:
    """Send requests one at a time over a keep-alive connection to `port` until told to stop."""
    streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    while (item := await next_item()) is not None:
        scheduled, payload = item
        try:
            if streams is None:
                streams = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = streams
            writer.write(payload)
            status, keep = await asyncio.wait_for(read_response(reader), READ_TIMEOUT)
            tally.record(status, time.perf_counter() - scheduled)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, ResponseError, ValueError):
            tally.errors += 1
            keep = False
        if not keep and streams is not None:
            streams[1].close()
            streams = None
    if streams is not None:
        streams[1].close()


async def run_load(
    pool: Path,
    ports: Sequence[int],
    *,
    seconds: float,
    connections: int,
    rate: float | None = None,
) -> LoadResult:
    """Load `ports` for `seconds`: at `rate` requests/s (open loop), or flat out (closed)."""
    path, requests = read_pool(pool)
    payloads = [format_request(path, signature, body) for signature, body in requests]
    if not payloads:
        raise ValueError("The pool file holds no requests; write one with write_pool.")
    tally = Tally()
    queue: asyncio.Queue[Item | None] = asyncio.Queue()
    start = time.perf_counter()
    deadline = start + seconds
    sent = 0
    exhausted = 0

    async def closed_loop_item() -> Item | None:
        # Closed loop: a connection takes its next request as soon as it has its answer.
        nonlocal sent, exhausted
        now = time.perf_counter()
        if now >= deadline:
            return None
        if sent == len(payloads):
            exhausted += 1
            return None
        sent += 1
        return now, payloads[sent - 1]

    next_item = queue.get if rate else closed_loop_item
    workers = [
        asyncio.create_task(_connection(ports[index % len(ports)], next_item, tally))
        for index in range(connections)
    ]
    if rate:
        while (scheduled := start + sent / rate) < deadline:
            if sent == len(payloads):
                exhausted = math.ceil(seconds * rate) - sent
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            queue.put_nowait((scheduled, payloads[sent]))
            sent += 1
        for _ in workers:
            queue.put_nowait(None)
    # Bounded drain: whatever has not answered by then counts as an error.
    _, pending = await asyncio.wait(workers, timeout=seconds + READ_TIMEOUT + 2)
    for task in pending:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    elapsed = time.perf_counter() - start
    latencies = sorted(tally.latencies)
    unanswered = sent - len(latencies) - tally.errors
    return LoadResult(
        requests=sent,
        seconds=elapsed,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        statuses=tally.statuses,
        errors=tally.errors + max(0, unanswered),
        exhausted=exhausted,
    )


def result_json(result: LoadResult) -> str:
    """Return `result` as one line of JSON."""
    return json.dumps(dataclasses.asdict(result))


def result_from_json(text: str) -> LoadResult:
    """Read back what result_json wrote."""
    data = json.loads(text)
    data["statuses"] = {int(key): value for key, value in data["statuses"].items()}
    return LoadResult(**data)


def main(argv: Sequence[str] | None = None) -> None:
    """Parse the command line, run one load, print its result as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pool", type=Path, required=True)
    parser.add_argument("--ports", required=True, help="comma-separated ports on 127.0.0.1")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=None, help="requests/s; omit for flat out")
    args = parser.parse_args(argv)
    ports = [int(port) for port in args.ports.split(",")]
    result = asyncio.run(
        run_load(
            args.pool, ports, seconds=args.seconds, connections=args.connections, rate=args.rate
        )
    )
    print(result_json(result))


if __name__ == "__main__":
    main()
