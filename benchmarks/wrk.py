"""Running wrk with pool.lua and reading back the one result line its done() prints."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from benchmarks.measurements import LoadResult

LUA_SCRIPT = Path(__file__).with_name("pool.lua")
RESULT_PREFIX = "BENCH_RESULT "


class WrkError(RuntimeError):
    """wrk is missing, failed, or printed no result line."""


def parse_wrk_output(text: str) -> LoadResult:
    """Return the result from wrk's output, or raise WrkError if the line is missing."""
    for line in text.splitlines():
        if line.startswith(RESULT_PREFIX):
            data = json.loads(line[len(RESULT_PREFIX) :])
            break
    else:
        raise WrkError(f"wrk printed no result line; its output was:\n{text[-2000:]}")
    errors = data["errors"]
    latency = data["latency_us"]
    return LoadResult(
        requests=int(data["requests"]),
        seconds=data["duration_us"] / 1e6,
        p50_ms=latency["p50"] / 1000,
        p99_ms=latency["p99"] / 1000,
        statuses={int(status): int(count) for status, count in data["statuses"].items()},
        # Non-2xx statuses are counted in `statuses`; these are socket-level failures.
        errors=sum(int(errors[key]) for key in ("connect", "read", "write", "timeout")),
        exhausted=int(data["exhausted"]),
    )


def wrk_binary() -> str:
    """Return wrk's path, or say how to install it."""
    found = shutil.which("wrk")
    if found is None:
        raise WrkError("wrk is not installed; run `make system-packages` (apt-get install wrk).")
    return found


def run_wrk(
    pool: Path,
    ports: Sequence[int],
    *,
    connections: int,
    seconds: float,
    cpus: str | None = None,
    threads: int | None = None,
) -> LoadResult:
    """Run wrk against 127.0.0.1 on `ports` (one thread per port at least), pinned to `cpus`."""
    threads = threads or len(ports)
    connections = max(connections, threads)
    argv = [
        wrk_binary(),
        f"-t{threads}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout=10s",
        "-s",
        str(LUA_SCRIPT),
        f"http://127.0.0.1:{ports[0]}/",
    ]
    if cpus is not None and shutil.which("taskset"):
        argv = ["taskset", "-c", cpus, *argv]
    env = dict(
        os.environ,
        BENCH_POOL=str(pool),
        BENCH_PORTS=",".join(str(port) for port in ports),
        BENCH_THREADS=str(threads),
    )
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=seconds + 120, check=False
    )
    if done.returncode != 0:
        raise WrkError(f"wrk exited with {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse_wrk_output(done.stdout)
