"""Writes docs/reliability.md from the counts a reliability run saved.

    python -m tests.reliability.report [RESULTS_JSON] [OUTPUT_MD]

`make soak` (SOAK=1) saves build/reliability/soak.json and writes docs/reliability.md itself at
the end of the run; a bounded run (`make test`) saves build/reliability/bounded.json and writes
build/reliability/bounded.md, so the committed table only ever comes from a labelled run.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tests.reliability.ledger import STAMP, HostileRow, Ledger, Row

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "build" / "reliability"
DOC = REPO_ROOT / "docs" / "reliability.md"

HEADER = """# Reliability

What the reliability suite (`tests/reliability/`) and the real node's fault tests
(`tests/node/test_node_faults.py`, and the receiver Pod's deletion in
`tests/node/test_pod_faults.py`: the rows named `Node:`) do to the system and what they
counted. Regenerate with `make soak` (more trials; writes this file, keeping the rows of
scenarios it did not run). `make test` runs the same scenarios with fewer trials and writes
its table to `build/reliability/bounded.md`.

Counts per scenario: **trials** run; **events sent** (for the receiver: Stripe events created
at the emulator or posted directly; for the operator: StripeWebhook endpoints the specs ask
for, each checked with a signed delivery); **lost** (an event never applied, or a wanted
endpoint missing or not verifying); **applied twice** (an event applied more than once, or a
duplicate or orphaned endpoint); **crashes** (processes killed or restarted on purpose, or
faults injected).

The operator crashing at each rotation step under traffic is covered by `tests/rotation/`
and is not repeated here. The `410 Gone` row runs on a control plane of its own whose API
server has no watch cache: the operator is stopped until the API server has ended its watch,
the StripeWebhooks change, etcd is compacted past the operator's last revision, and the
resumed watch is answered 410 by the real API server (kopf's log line proves it) before the
operator lists afresh. That the operator's RBAC is the least its journey needs is checked
against the API server's audit log by `tests/chart/test_operator_rbac.py`, in both RBAC modes.

The `Node:` rows run on the real node (docs/architecture.md, "The node") with the chart
installed, Stripe's deliveries going through the receiver Service: containerd and the kubelet
stopped and started again by PID, the Pods running on; the operator's Pod deleted (no grace)
at each step of a rotation, each of Stripe's endpoint writes slowed to 4 s so that every step
is seen; the receiver's aggregated Secret deleted with `kubectl delete`; and the receiver's
SQLite file moved to a memory-backed `emptyDir` of 4 MiB, filled to the last byte under
traffic (the receiver answers 503 and Stripe retries) and then freed. Crashes count the faults
caused.
"""

HOSTILE_HEADER = """## Hostile traffic

What hostile clients did to the receiver (`test_hostile_requests.py`,
`test_parser_fuzzing.py`, `test_hostile_connections.py`), and how honest deliveries sent at
the same time fared. **Cases**: requests, connections or fuzzer inputs sent by the hostile
side. **Failures**: answers with a 5xx other than 503, or an exception a parser may not raise.
**503**: answers `overloaded` or `database_unavailable`, the one documented 5xx (Stripe
retries it). **Hangs**: neither an answer nor a close within the client timeout plus a margin.
**Unverified changes**: stored state changed by a request without a valid signature or key.
**Secrets shown**: answers holding a signing secret, a receipts key or its digest.
**Honest**: signed Stripe-shaped deliveries sent at a steady rate during the attack; lost means
not answered 200 or not applied; p99 is their latency as the sender saw it, on the machine
that ran the suite (the receiver, the hostile clients and the sender share its cores, so it
measures the attack's cost, not the receiver's speed: see docs/benchmarks.md). **Peak / cap**:
the receiver's peak memory (its cgroup's, page cache included) against the memory cap it ran
under: the chart's `receiver.resources.limits.memory`, enforced by a cgroup v1 memory
controller (the kernel kills the process past it). An empty cell was not measured.
"""


def _cell(value: float | None, digits: int = 0) -> str:
    if value is None:
        return ""
    return f"{value:.{digits}f}" if digits else f"{value:,.0f}"


def source(label: str, rows: Sequence[Row | HostileRow], when: datetime) -> str:
    """The line that dates a table's rows: the date most of them share, then each group of
    rows re-run alone later or earlier (the ledger keeps the rows a run did not touch); `when`
    dates the rows that carry no date."""
    by_stamp: dict[str, list[str]] = {}
    for row in rows:
        by_stamp.setdefault(row.ran or when.strftime(STAMP), []).append(row.scenario)
    groups = sorted(by_stamp.items(), key=lambda item: (-len(item[1]), item[0]))
    base = groups[0][0] if groups else when.strftime(STAMP)
    line = f"Source: {label}, {base} UTC"
    for stamp, names in sorted(groups[1:]):
        line += f"; re-run alone {stamp} UTC: " + ", ".join(names)
    return line + "."


def hostile_table(label: str, rows: list[HostileRow], when: datetime) -> list[str]:
    """The Markdown lines of the hostile-traffic table (none without rows)."""
    if not rows:
        return []
    lines = [
        "",
        HOSTILE_HEADER,
        source(label, rows, when),
        "",
        "| Scenario | Cases | Failures | 503 | Hangs | Unverified changes | Secrets shown "
        "| Honest | Honest lost | Honest p99 ms | Peak / cap MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        memory = "" if r.peak_mib is None else f"{r.peak_mib:.0f} / {_cell(r.cap_mib)}"
        lines.append(
            f"| {r.scenario} | {r.cases:,} | {r.failures:,} | {r.unavailable:,} | {r.hangs:,} "
            f"| {r.unverified_changes:,} | {r.secrets_shown:,} | {_cell(r.honest_sent)} "
            f"| {_cell(r.honest_lost)} | {_cell(r.honest_p99_ms, 1)} | {memory} |"
        )
    return lines


def render(
    soak: bool, rows: list[Row], when: datetime, hostile: list[HostileRow] | None = None
) -> str:
    """Return the Markdown page for `rows` and `hostile`, each table dated on its own;
    `when` dates the rows that carry no date."""
    label = "soak run (`make soak`)" if soak else "bounded run (`make test`, few trials)"
    lines = [
        HEADER,
        source(label, rows, when),
        "",
        "| Scenario | Trials | Events sent | Lost | Applied twice | Crashes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.scenario} | {r.trials} | {r.events_sent} | {r.lost} | {r.applied_twice} "
        f"| {r.crashes} |"
        for r in rows
    ]
    lines += hostile_table(label, hostile or [], when)
    return "\n".join(lines) + "\n"


def _stamps(line: str) -> tuple[str, list[tuple[str, str]]]:
    """A Source line's date, and each later group's (date, names) as `source` wrote them."""
    base = re.search(r", (\d{4}-\d\d-\d\d \d\d:\d\d) UTC", line)
    groups = re.findall(r"; re-run alone (\S+ \S+) UTC: (.*?)(?=; re-run alone |\.$)", line)
    return (base.group(1) if base else ""), groups


def _number(cell: str) -> float | None:
    return float(cell.replace(",", "")) if cell.strip() else None


def read_page(text: str) -> tuple[bool, list[Row], list[HostileRow]]:
    """Read a page `render` wrote back into (soak, rows, hostile rows), each row dated as its
    Source line says: what a new run merges with when no results file was kept (a fresh
    clone has only the committed page)."""
    rows: list[Row] = []
    hostile: list[HostileRow] = []
    stamp, groups = "", []
    soak = "Source: soak run" in text
    for line in text.splitlines():
        if line.startswith("Source: "):
            stamp, groups = _stamps(line)
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not line.startswith("| ") or cells[0] == "Scenario" or len(cells) < 6:
            continue
        name = cells[0]
        ran = next((when for when, names in groups if name in names), stamp)
        if len(cells) == 6:
            numbers = [int(cell.replace(",", "")) for cell in cells[1:]]
            rows.append(Row(name, *numbers, ran=ran))
            continue
        peak, _, cap = cells[10].partition(" / ")
        honest = [_number(cell) for cell in cells[7:10]]
        hostile.append(
            HostileRow(
                name,
                *(int(cell.replace(",", "")) for cell in cells[1:7]),
                honest_sent=None if honest[0] is None else int(honest[0]),
                honest_lost=None if honest[1] is None else int(honest[1]),
                honest_p99_ms=honest[2],
                peak_mib=_number(peak),
                cap_mib=_number(cap),
                ran=ran,
            )
        )
    return soak, rows, hostile


def seed(results: Path, page: Path) -> None:
    """Start `results` from the committed `page` when no earlier run's results are here, so
    that a run of a few scenarios replaces their rows and keeps the others' (with their
    dates)."""
    if results.exists() or not page.exists():
        return
    soak, rows, hostile = read_page(page.read_text())
    results.parent.mkdir(parents=True, exist_ok=True)
    Ledger.dump(results, soak, rows, hostile)


def write(results: Path, output: Path) -> None:
    """Render the counts saved in `results` into `output`."""
    soak, rows, hostile = Ledger.load_all(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(soak, rows, datetime.now(UTC), hostile))


def main(argv: list[str]) -> None:
    """Entry point: optional results path and output path."""
    results = Path(argv[0]) if argv else RESULTS_DIR / "soak.json"
    output = Path(argv[1]) if len(argv) > 1 else DOC
    write(results, output)


if __name__ == "__main__":
    main(sys.argv[1:])
