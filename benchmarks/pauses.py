"""Where a server's pauses come from: garbage collections and commit groups, timed in-process.

The p99 at half of saturation is set by stalls, not by steady cost, and a profile of averages
does not show them. This runs a Python server program (our receiver's console script) with two
timers and writes every pause longer than PAUSE_MS to a log, one line each:

- `gc0`, `gc1`, `gc2`: a collection of that generation (the event loop stands still meanwhile);
- `commit`: the blocking part of one commit group in the database's worker thread (SQLite: the
  COMMIT with its fsync, and any WAL checkpoint SQLite runs inside it; PostgreSQL: the group's
  two transactions). The event loop runs on, but the group's requests wait.

    python -m benchmarks.pauses --log FILE PROGRAM [ARGS...]

`summary(FILE)` reads the log back. Times are wall-clock: on a busy machine they include the
time the process waited for a CPU, so compare kinds within a run, and rerun on a quiet one.
"""

from __future__ import annotations

import argparse
import gc
import runpy
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

PAUSE_MS = 5.0


@dataclass(frozen=True)
class Pauses:
    """The pauses of one kind: how many, their total and the longest, in milliseconds."""

    count: int
    total_ms: float
    max_ms: float


def summary(log: Path) -> dict[str, Pauses]:
    """Return the pauses in `log` by kind (an absent log: none)."""
    found: dict[str, list[float]] = {}
    if log.exists():
        for line in log.read_text().splitlines():
            kind, _, milliseconds = line.partition(" ")
            found.setdefault(kind, []).append(float(milliseconds))
    return {kind: Pauses(len(values), sum(values), max(values)) for kind, values in found.items()}


class Recorder:
    """Writes `<kind> <milliseconds>` for each pause over PAUSE_MS."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.gc_started = 0.0

    def note(self, kind: str, seconds: float) -> None:
        if seconds * 1000 >= PAUSE_MS:
            self.out.write(f"{kind} {seconds * 1000:.2f}\n")

    def on_gc(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.gc_started = time.perf_counter()
        else:
            self.note(f"gc{info['generation']}", time.perf_counter() - self.gc_started)

    def timed(self, function: Callable[[Any], Any]) -> Callable[[Any], Any]:
        def run(argument: Any) -> Any:
            started = time.perf_counter()
            try:
                return function(argument)
            finally:
                self.note("commit", time.perf_counter() - started)

        return run


def install(recorder: Recorder) -> None:
    """Time every collection and every commit group of the receiver's databases."""
    from stripe_webhook_receiver import database

    gc.callbacks.append(recorder.on_gc)
    original = database._Flusher.run

    def run(self: Any, function: Callable[[Any], Any], argument: Any) -> Any:
        return original(self, recorder.timed(function), argument)

    database._Flusher.run = run  # type: ignore[method-assign]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("program")
    parser.add_argument("arguments", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    # Line-buffered: the server is stopped by a signal, and every line must be on disk.
    out = args.log.open("a", buffering=1)
    install(Recorder(out))
    sys.argv = [args.program, *args.arguments]
    runpy.run_path(args.program, run_name="__main__")


if __name__ == "__main__":
    main()
