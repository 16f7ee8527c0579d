"""Writes docs/reliability.md from the counts a reliability run saved.

    python -m tests.reliability.report [RESULTS_JSON] [OUTPUT_MD]

`make soak` (SOAK=1) saves build/reliability/soak.json and writes docs/reliability.md itself at
the end of the run; a bounded run (`make test`) saves build/reliability/bounded.json and writes
build/reliability/bounded.md, so the committed table only ever comes from a labelled run.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from tests.reliability.ledger import STAMP, HostileRow, Ledger, Row

REPO_ROOT = Path(__file__).resolve().parents[2]
RESULTS_DIR = REPO_ROOT / "build" / "reliability"
DOC = REPO_ROOT / "docs" / "reliability.md"

HEADER = """# Reliability

What the reliability suite (`tests/reliability/`) does to the system and what it counted.
Regenerate with `make soak` (more trials; writes this file). `make test` runs the same
scenarios with fewer trials and writes its table to `build/reliability/bounded.md`.

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
