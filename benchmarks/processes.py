"""Reading a process's memory from /proc: resident now, and peak, for a whole process tree."""

from __future__ import annotations

from pathlib import Path

PROC = Path("/proc")


def status_kib(pid: int, field: str) -> int:
    """Return a `kB` field (VmRSS, VmHWM) of /proc/PID/status, or 0 if the process is gone."""
    try:
        text = (PROC / str(pid) / "status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def children(pid: int) -> list[int]:
    """Return the PIDs of `pid`'s direct children (all of its threads' children)."""
    found: list[int] = []
    try:
        tasks = list((PROC / str(pid) / "task").iterdir())
    except OSError:
        return found
    for task in tasks:
        try:
            found.extend(int(child) for child in (task / "children").read_text().split())
        except OSError:
            continue
    return found


def tree(pid: int) -> list[int]:
    """Return `pid` and all of its descendants."""
    result: list[int] = []
    pending = [pid]
    while pending and len(result) < 10_000:
        current = pending.pop()
        result.append(current)
        pending.extend(children(current))
    return result


def process_tree_rss_kib(pid: int) -> int:
    """Return the resident memory of `pid` and its descendants now, in KiB."""
    return sum(status_kib(member, "VmRSS") for member in tree(pid))


def process_tree_peak_kib(pid: int) -> int:
    """Return the sum of each member's peak resident memory (VmHWM), in KiB."""
    return sum(status_kib(member, "VmHWM") for member in tree(pid))
