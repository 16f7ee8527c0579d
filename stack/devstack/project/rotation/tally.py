"""The books of one rotation under traffic: what Stripe emitted and tried to deliver, set
against what the receiver recorded and applied (read from its SQLite database).

The receiver records every delivery with its outcome, and inserts an event id into
`processed_events` when it applies the event (or finds it older than the state it holds);
a duplicate delivery is recorded with outcome 'duplicate'. So "applied exactly once" reads
as: each emitted event has exactly one delivery with outcome 'applied' or 'stale'.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Outcomes the receiver records for a delivery that applied the event.
PROCESSED = ("applied", "stale", "replayed_applied", "replayed_stale")
# Codes the receiver records when a signature check fails (receiver/.../signing.py).
SIGNATURE_CODES = (
    "missing_header",
    "malformed_header",
    "bad_timestamp",
    "timestamp_outside_tolerance",
    "no_matching_signature",
)


@dataclass(frozen=True)
class ReceiverRecord:
    event_id: str | None
    outcome: str
    status_code: int | None
    fingerprint: str | None
    received_at: float


def receiver_records(database: Path, webhook: str) -> list[ReceiverRecord]:
    """Return the receiver's delivery records of `webhook`, oldest first."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        rows = connection.execute(
            "SELECT event_id, outcome, status_code, secret_fingerprint, received_at "
            "FROM deliveries WHERE webhook = ? ORDER BY id",
            (webhook,),
        ).fetchall()
    finally:
        connection.close()
    return [ReceiverRecord(r[0], r[1], r[2], r[3], r[4] / 1000) for r in rows]


def processed_event_ids(database: Path, webhook: str) -> set[str]:
    """Return the event ids the receiver holds as processed for `webhook`."""
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)
    try:
        rows = connection.execute(
            "SELECT event_id FROM processed_events WHERE webhook = ?", (webhook,)
        ).fetchall()
    finally:
        connection.close()
    return {str(row[0]) for row in rows}


@dataclass
class Tally:
    """Counts over one run; the lists name the events or attempts behind each count."""

    events_sent: int
    unapplied: list[str]
    applied_twice: list[str]
    processed_ids_unknown: list[str]
    duplicates_delivered: int
    failed_attempts: Counter[str]
    signature_refusals: int
    refusals_after_enable: list[ReceiverRecord]
    refusals_from_old_endpoint: list[dict[str, Any]]
    unanswered: list[dict[str, Any]] = field(default_factory=list)
    attempts: list[dict[str, Any]] = field(default_factory=list, repr=False)

    def problems(self) -> dict[str, list[Any]]:
        """Return what went wrong, by name: empty when every event was applied once and no
        signature was refused once the new endpoint was enabled."""
        found = {
            "events never applied": [
                {"event": e, "attempts": [a for a in self.attempts if a["event"] == e]}
                for e in self.unapplied
            ],
            "events applied twice": list(self.applied_twice),
            "applied events Stripe never sent": list(self.processed_ids_unknown),
            "refused after the new endpoint was enabled": self.refusals_after_enable,
            "refused from the old endpoint": self.refusals_from_old_endpoint,
        }
        return {name: items for name, items in found.items() if items}


def count(
    emitted: set[str],
    attempts: list[dict[str, Any]],
    records: list[ReceiverRecord],
    processed: set[str],
    *,
    old_endpoint: str,
    new_enabled_since: float,
) -> Tally:
    """Tally a run: `attempts` are the emulator's delivery attempts, `records` and
    `processed` the receiver's; `new_enabled_since` a moment before the new endpoint's final
    enable (before it, the new endpoint may send with a secret the receiver does not hold yet:
    Stripe creates endpoints enabled, and the operator disables it right after)."""
    applied = Counter(r.event_id for r in records if r.outcome in PROCESSED)
    refused = [a for a in attempts if a["status"] == 400]
    failed = Counter(
        "no answer" if a["status"] is None else str(a["status"])
        for a in attempts
        if a["status"] is None or not 200 <= a["status"] < 300
    )
    return Tally(
        events_sent=len(emitted),
        unapplied=sorted(e for e in emitted if applied[e] == 0),
        applied_twice=sorted(str(e) for e, n in applied.items() if n > 1),
        processed_ids_unknown=sorted(processed - emitted),
        duplicates_delivered=sum(1 for r in records if r.outcome == "duplicate"),
        failed_attempts=failed,
        signature_refusals=sum(1 for r in records if r.outcome in SIGNATURE_CODES),
        # By the receiver's arrival time: Stripe stamps an attempt when its answer comes, and
        # one sent before the enable may be answered after it.
        refusals_after_enable=[
            r for r in records if r.outcome in SIGNATURE_CODES and r.received_at > new_enabled_since
        ],
        refusals_from_old_endpoint=[a for a in refused if a["endpoint"] == old_endpoint],
        unanswered=[a for a in attempts if a["status"] is None],
        attempts=attempts,
    )
