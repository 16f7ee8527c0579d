"""Reading a cProfile dump into a short table: where a server's main thread spent its time."""

from __future__ import annotations

import pstats
from pathlib import Path

from benchmarks.report import markdown_table

SITE_PACKAGES = "site-packages/"


def _where(filename: str, line: int, function: str) -> str:
    """Shorten a code location to `package/module.py:line(function)`."""
    if SITE_PACKAGES in filename:
        filename = filename.split(SITE_PACKAGES, 1)[1]
    elif "/work/" in filename or filename.startswith("/"):
        parts = Path(filename).parts
        filename = "/".join(parts[-2:])
    return f"`{filename}:{line}({function})`" if line else f"`{function}`"


def top_functions(profile: Path, count: int = 15) -> str:
    """Return a Markdown table of the `count` functions with the most own time."""
    stats = pstats.Stats(str(profile))
    # pstats keeps, per function, (primitive calls, calls, own time, cumulative time, callers).
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in entries.values()) or 1.0
    ranked = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:count]
    rows = [
        [
            _where(*location),
            f"{entry[1]:,}",
            f"{entry[2]:.2f}",
            f"{100 * entry[2] / total:.1f} %",
            f"{entry[3]:.2f}",
        ]
        for location, entry in ranked
    ]
    headers = ["function", "calls", "own s", "own share", "cumulative s"]
    return markdown_table(headers, rows)
