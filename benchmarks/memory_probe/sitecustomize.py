"""Memory probe for a benchmarked process: where its resident memory lives, over time.

Loaded only when a benchmark puts this folder first on the child's PYTHONPATH and names a
file in BENCH_MEMORY_PROBE (`operator_bench.py --memory-probe`). A daemon thread appends one
JSON line per interval: resident and peak memory, the anonymous share (/proc/self/smaps_rollup),
glibc's heap (mallinfo2: in use, free but kept, mmapped), pymalloc's blocks, the collector's
counts and, under tracemalloc, the traced total. At each new high by 32 MiB, and when one interval
adds 12 MiB, it writes beside the file tracemalloc's largest allocation sites (under
tracemalloc), else the collector's objects counted by type.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import sys
import threading
import time

INTERVAL = float(os.environ.get("BENCH_MEMORY_PROBE_INTERVAL", "1"))
SNAPSHOT_STEP_KIB = 32 * 1024  # a snapshot at each new high by this much
JUMP_KIB = 12 * 1024  # and when one interval adds this much (at most MAX_JUMPS of them)
MAX_JUMPS = 5


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in (
            "arena",
            "ordblks",
            "smblks",
            "hblks",
            "hblkhd",
            "usmblks",
            "fsmblks",
            "uordblks",
            "fordblks",
            "keepcost",
        )
    ]


def _mallinfo() -> dict[str, int]:
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _MallInfo2
        info = libc.mallinfo2()
    except (OSError, AttributeError):
        return {}
    return {
        "heap_kib": info.arena // 1024,
        "heap_used_kib": info.uordblks // 1024,
        "heap_free_kib": info.fordblks // 1024,
        "mmapped_kib": info.hblkhd // 1024,
    }


def _kib_fields(path: str, names: tuple[str, ...]) -> dict[str, int]:
    found: dict[str, int] = {}
    try:
        with open(path) as file:
            for line in file:
                key, _, rest = line.partition(":")
                if key in names:
                    found[key] = int(rest.split()[0])
    except OSError:
        pass
    return found


def _sample(began: float) -> dict[str, object]:
    import tracemalloc

    status = _kib_fields("/proc/self/status", ("VmRSS", "VmHWM", "Threads"))
    rollup = _kib_fields("/proc/self/smaps_rollup", ("Anonymous", "Rss"))
    sockets = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            sockets += os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")
        except OSError:  # closed meanwhile
            continue
    line: dict[str, object] = {
        "sockets": sockets,
        "t": round(time.monotonic() - began, 2),
        "rss_kib": status.get("VmRSS", 0),
        "hwm_kib": status.get("VmHWM", 0),
        "anon_kib": rollup.get("Anonymous", 0),
        "threads": status.get("Threads", 0),
        "pymalloc_blocks": sys.getallocatedblocks(),
        "gc_counts": gc.get_count(),
        "gc_collections": [entry["collections"] for entry in gc.get_stats()],
        **_mallinfo(),
    }
    if tracemalloc.is_tracing():
        current, peak = tracemalloc.get_traced_memory()
        line["traced_kib"] = current // 1024
        line["traced_peak_kib"] = peak // 1024
    return line


def _write_census(path: str, rss_kib: int) -> None:
    """Without tracemalloc: the collector's objects by type, the most numerous first."""
    from collections import Counter

    objects = gc.get_objects()
    counts = Counter(type(obj).__name__ for obj in objects)
    # Exceptions kept alive keep their tracebacks' frames, and those frames' locals, alive.
    raised = Counter(type(obj).__name__ for obj in objects if isinstance(obj, BaseException))
    frames = Counter(
        f"{obj.f_code.co_filename}:{obj.f_code.co_name}"
        for obj in objects
        if type(obj).__name__ == "frame"
    )
    del objects
    with open(path, "w") as file:
        file.write(f"resident {rss_kib // 1024} MiB; objects the collector tracks, by type:\n")
        for name, count in counts.most_common(30):
            file.write(f"{count:10d}  {name}\n")
        file.write("\nexceptions alive, by type:\n")
        for name, count in raised.most_common(10):
            file.write(f"{count:10d}  {name}\n")
        file.write("\nframes alive, by function:\n")
        for name, count in frames.most_common(15):
            file.write(f"{count:10d}  {name}\n")


def _write_snapshot(path: str, rss_kib: int) -> None:
    import tracemalloc

    if not tracemalloc.is_tracing():
        _write_census(path, rss_kib)
        return
    snapshot = tracemalloc.take_snapshot()
    with open(path, "w") as file:
        file.write(f"resident {rss_kib // 1024} MiB; largest traced allocation sites:\n")
        for stat in snapshot.statistics("lineno")[:40]:
            file.write(f"{stat.size / 1024:10.0f} KiB {stat.count:8d} blocks  {stat.traceback}\n")
        if tracemalloc.get_traceback_limit() > 1:
            file.write("\nlargest call paths (innermost last):\n")
            for stat in snapshot.statistics("traceback")[:25]:
                file.write(f"\n{stat.size / 1024:10.0f} KiB {stat.count:8d} blocks\n")
                for frame in stat.traceback:
                    file.write(f"    {frame.filename}:{frame.lineno}\n")


def _run(path: str) -> None:
    began = time.monotonic()
    high = last = 0
    jumps = 0
    while True:
        line = _sample(began)
        with open(path, "a") as file:
            file.write(json.dumps(line) + "\n")
        rss = int(line["rss_kib"])  # type: ignore[call-overload]
        if rss >= high + SNAPSHOT_STEP_KIB:
            _write_snapshot(path + ".high.txt", rss)
            high = rss
        elif rss >= last + JUMP_KIB and jumps < MAX_JUMPS:
            jumps += 1
            _write_snapshot(f"{path}.jump-{line['t']:.0f}s.txt", rss)
        last = rss
        time.sleep(INTERVAL)


def _start() -> None:
    path = os.environ.get("BENCH_MEMORY_PROBE")
    if not path:
        return
    path = f"{path}.{os.getpid()}"
    threading.Thread(target=_run, args=(path,), name="memory-probe", daemon=True).start()


_start()
