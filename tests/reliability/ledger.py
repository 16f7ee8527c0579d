"""Per-scenario counts of the reliability suite: trials, events sent, events lost, events
applied twice, crashes caused; and, for hostile traffic, what the hostile clients got and how
the honest deliveries beside them fared. Tests add to a row as they go and assert afterwards,
so a failing trial still shows in the table it produced."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

SOAK = os.environ.get("SOAK", "") not in ("", "0")
# pytest-timeout's limit for a scenario test: the suite's 300 s, more for soak trials.
TIMEOUT = 1500 if SOAK else 300
STAMP = "%Y-%m-%d %H:%M"


def trials(bounded: int, soak: int) -> int:
    """How many trials a scenario runs: a few in `make test`, more under `make soak`."""
    return soak if SOAK else bounded


@dataclass
class Row:
    """One scenario's counts. For operator scenarios an 'event' is a desired endpoint: lost
    means missing or not verifying, applied twice means a duplicate or orphaned endpoint."""

    scenario: str
    trials: int = 0
    events_sent: int = 0
    lost: int = 0
    applied_twice: int = 0
    crashes: int = 0
    # When the session that counted it saved it ("YYYY-MM-DD HH:MM" UTC); empty if unknown.
    ran: str = ""

    def add(
        self,
        *,
        trials: int = 0,
        events_sent: int = 0,
        lost: int = 0,
        applied_twice: int = 0,
        crashes: int = 0,
    ) -> None:
        self.trials += trials
        self.events_sent += events_sent
        self.lost += lost
        self.applied_twice += applied_twice
        self.crashes += crashes


@dataclass
class HostileRow:
    """One hostile-traffic scenario: `cases` sent by the hostile side (requests, connections or
    fuzzer inputs); `failures` among their answers (a 5xx other than 503, or an exception a
    parser may not raise); `unavailable` (503 answers, documented: overloaded or no
    database); `hangs` (no answer nor close within the deadline); `unverified_changes` (state
    changed by a request without a valid signature or key); `secrets_shown` (answers holding a
    secret); and the honest deliveries sent meanwhile: how many, how many were lost (not
    answered 200, or not applied), their p99 latency, and the receiver's peak memory against
    its cap. None: not measured in this scenario."""

    scenario: str
    cases: int = 0
    failures: int = 0
    unavailable: int = 0
    hangs: int = 0
    unverified_changes: int = 0
    secrets_shown: int = 0
    honest_sent: int | None = None
    honest_lost: int | None = None
    honest_p99_ms: float | None = None
    peak_mib: float | None = None
    cap_mib: float | None = None
    ran: str = ""


class Ledger:
    """Rows in the order scenarios first report; saved as JSON for the report generator."""

    def __init__(self) -> None:
        self.rows: dict[str, Row] = {}
        self.hostile: dict[str, HostileRow] = {}

    def row(self, scenario: str) -> Row:
        """Return the row of `scenario`, created empty on first use."""
        return self.rows.setdefault(scenario, Row(scenario))

    def hostile_row(self, scenario: str) -> HostileRow:
        """Return the hostile-traffic row of `scenario`, created empty on first use."""
        return self.hostile.setdefault(scenario, HostileRow(scenario))

    def save(self, path: Path, when: datetime | None = None) -> None:
        """Write the rows to `path`, stamped with `when` (default now), keeping the rows of
        scenarios this session did not run (so that rerunning one scenario updates only its
        row)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        stamp = (when or datetime.now(UTC)).strftime(STAMP)
        rows = {name: replace(row, ran=stamp) for name, row in self.rows.items()}
        hostile = {name: replace(row, ran=stamp) for name, row in self.hostile.items()}
        if path.exists():
            soak, earlier, earlier_hostile = self.load_all(path)
            if soak == SOAK:
                rows = {row.scenario: row for row in earlier} | rows
                hostile = {row.scenario: row for row in earlier_hostile} | hostile
        Ledger.dump(path, SOAK, list(rows.values()), list(hostile.values()))

    @staticmethod
    def dump(path: Path, soak: bool, rows: list[Row], hostile: list[HostileRow]) -> None:
        """Write rows as they are (with their dates) to `path`, in the format `load` reads."""
        payload = {
            "soak": soak,
            "rows": [asdict(row) for row in rows],
            "hostile": [asdict(row) for row in hostile],
        }
        path.write_text(json.dumps(payload, indent=2) + "\n")

    @staticmethod
    def load(path: Path) -> tuple[bool, list[Row]]:
        """Return (soak, rows) from a file written by `save`."""
        soak, rows, _ = Ledger.load_all(path)
        return soak, rows

    @staticmethod
    def load_all(path: Path) -> tuple[bool, list[Row], list[HostileRow]]:
        """Return (soak, rows, hostile rows) from a file written by `save`."""
        payload = json.loads(path.read_text())
        return (
            bool(payload["soak"]),
            [Row(**row) for row in payload["rows"]],
            [HostileRow(**row) for row in payload.get("hostile", [])],
        )
