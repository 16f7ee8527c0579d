"""Writes docs/reliability.md from the counts a reliability run saved.

    python -m tests.reliability.report [RESULTS_JSON] [OUTPUT_MD]

`make soak` (SOAK=1) saves build/reliability/soak.json and writes docs/reliability.md itself at
the end of the run; a bounded run (`make test`) saves build/reliability/bounded.json and writes
build/reliability/bounded.md, so the committed table only ever comes from a labelled run.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path

from tests.reliability.ledger import STAMP, Ledger, Row

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
against the API server's audit log by `tests/chart/test_operator_rbac.py`.
"""


def render(soak: bool, rows: list[Row], when: datetime) -> str:
    """Return the Markdown page for `rows`; `when` dates the rows that carry no date."""
    label = "soak run (`make soak`)" if soak else "bounded run (`make test`, few trials)"
    # Rows are re-run alone at times (the ledger keeps the others): date each group of rows.
    by_stamp: dict[str, list[str]] = {}
    for row in rows:
        by_stamp.setdefault(row.ran or when.strftime(STAMP), []).append(row.scenario)
    groups = sorted(by_stamp.items(), key=lambda item: (-len(item[1]), item[0]))
    base = groups[0][0] if groups else when.strftime(STAMP)
    source = f"Source: {label}, {base} UTC"
    for stamp, names in sorted(groups[1:]):
        source += f"; re-run alone {stamp} UTC: " + ", ".join(names)
    source += "."
    lines = [
        HEADER,
        source,
        "",
        "| Scenario | Trials | Events sent | Lost | Applied twice | Crashes |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.scenario} | {r.trials} | {r.events_sent} | {r.lost} | {r.applied_twice} "
        f"| {r.crashes} |"
        for r in rows
    ]
    return "\n".join(lines) + "\n"


def write(results: Path, output: Path) -> None:
    """Render the counts saved in `results` into `output`."""
    soak, rows = Ledger.load(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(render(soak, rows, datetime.now(UTC)))


def main(argv: list[str]) -> None:
    """Entry point: optional results path and output path."""
    results = Path(argv[0]) if argv else RESULTS_DIR / "soak.json"
    output = Path(argv[1]) if len(argv) > 1 else DOC
    write(results, output)


if __name__ == "__main__":
    main(sys.argv[1:])
