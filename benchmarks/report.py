"""Rendering results: tables, the machine and versions, and docs/benchmarks.md sections.

docs/benchmarks.md holds one section per benchmark between `<!-- NAME:begin -->` and
`<!-- NAME:end -->`; a run rewrites its own section and leaves the others as they were.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import math
import os
import platform
import re
import shutil
import sqlite3
import subprocess
from collections.abc import Iterable, Sequence
from pathlib import Path

from benchmarks.measurements import Spread
from devstack.processes import REPO_ROOT

DASH = "\u2013"  # an en dash, for ranges and empty cells
DOC_PATH = REPO_ROOT / "docs" / "benchmarks.md"
DOC_HEADER = """# Benchmarks

Measured side by side in one run, because this machine is shared and noisy: compare the
ratios within a section, not absolute figures across runs. Each figure is the median of the
repeats, with the minimum and maximum in brackets. Each section is written by its
`make bench-*` target (`make bench` runs them all in turn; the scripts are in benchmarks/);
`--quick` runs give indicative figures only.
"""


def spread_text(spread: Spread, digits: int = 0, unit: str = "") -> str:
    """Format a Spread as `median (min-max)`, or `median` when there was one run."""
    if spread.count == 0 or math.isnan(spread.median):
        return DASH
    median = f"{spread.median:,.{digits}f}{unit}"
    if spread.count == 1 or spread.low == spread.high:
        return median
    return f"{median} ({spread.low:,.{digits}f}{DASH}{spread.high:,.{digits}f})"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    """Return a Markdown table whose columns are padded to line up in a terminal too."""
    body = [list(headers), *[list(row) for row in rows]]
    widths = [max(len(row[column]) for row in body) for column in range(len(headers))]
    lines = [
        "| " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)) + " |"
        for row in body
    ]
    lines.insert(1, "|" + "|".join("-" * (width + 2) for width in widths) + "|")
    return "\n".join(lines)


def _command_output(argv: Sequence[str]) -> str:
    if shutil.which(argv[0]) is None:
        return "not installed"
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (done.stdout or done.stderr).strip().splitlines()
    return text[0] if text else "unknown"


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def git_commit() -> str:
    return _command_output(["git", "-C", str(REPO_ROOT), "rev-parse", "--short", "HEAD"])


def load_text() -> str:
    """Return the 1, 5 and 15 minute load averages now."""
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())


def machine_facts(load_at_start: str) -> list[tuple[str, str]]:
    """Return what a reader needs to weigh the figures: CPU, cores, memory, kernel, load.

    The machine is shared: the load averages say how busy it was besides the benchmark.
    """
    return [
        ("CPU", f"{cpu_model()}, {len(os.sched_getaffinity(0))} usable CPUs"),
        ("Memory", memory_total()),
        ("Kernel", f"{platform.system()} {platform.release()}"),
        ("Load average (1, 5, 15 min) at start", load_at_start),
        ("Load average (1, 5, 15 min) at end", load_text()),
        ("Date (UTC), end of run", datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M")),
        ("Commit", git_commit()),
    ]


def package_versions(names: Sequence[str]) -> list[tuple[str, str]]:
    """Return the installed version of each distribution (or `not installed`)."""
    found = [("Python", platform.python_version()), ("SQLite", sqlite3.sqlite_version)]
    for name in names:
        try:
            found.append((name, importlib.metadata.version(name)))
        except importlib.metadata.PackageNotFoundError:
            found.append((name, "not installed"))
    return found


def tool_version(argv: Sequence[str]) -> str:
    """Return the first line a tool prints about its version."""
    return _command_output(argv)


def facts_table(facts: Sequence[tuple[str, str]]) -> str:
    return markdown_table(["", ""], [[name, value] for name, value in facts])


def replace_section(name: str, content: str, path: Path = DOC_PATH) -> Path:
    """Write `content` as section `name` of the document at `path`, keeping other sections."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    block = f"{begin}\n{content.strip()}\n{end}"
    text = path.read_text() if path.exists() else DOC_HEADER
    pattern = re.compile(re.escape(begin) + r".*?" + re.escape(end), re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def verdict(met: bool | None) -> str:
    """Return `met`, `missed`, or `not measured`."""
    if met is None:
        return "not measured"
    return "met" if met else "**missed**"


def add_output_option(parser: argparse.ArgumentParser) -> None:
    """Add `--output FILE` (default docs/benchmarks.md; `-` writes nothing)."""
    parser.add_argument(
        "--output",
        type=Path,
        default=DOC_PATH,
        help="Markdown file to write the section into; `-` to write nothing",
    )


def output_path(value: Path) -> Path | None:
    return None if str(value) == "-" else value


def closing_sections(facts: Sequence[tuple[str, str]], notes: Sequence[str]) -> list[str]:
    """Return the lines of the `Machine and versions` and `Notes` subsections."""
    lines = ["### Machine and versions", "", facts_table(facts)]
    if notes:
        lines += ["", "### Notes", "", *[f"- {note}" for note in notes]]
    return lines


def publish(name: str, section: str, output: Path | None) -> None:
    """Print `section` and, unless `output` is None, write it as section `name` there."""
    print()
    print(section)
    if output is not None:
        print(f"\nwritten to {replace_section(name, section, output)}")
