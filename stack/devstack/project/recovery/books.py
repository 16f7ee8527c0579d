"""The books of a recovery scenario: every event the Stripe emulator ever created for the
account (its own log, beyond the Events API's retention too), set against what the receiver's
database says it applied.

An event is applied when the receiver holds its id as processed; it is applied twice when two
of its deliveries are recorded with an applying outcome (rotation/tally.py's `PROCESSED`:
applied, stale, or either of them on a replay). Lost is an event the emulator created of a
type the webhook enabled that the receiver never applied. Events beyond the retention cannot
be recovered: they are counted apart, and a scenario checks that each of them lies in an
interval the operator reported as lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.project.rotation.tally import (
    PROCESSED,
    ReceiverRecord,
    processed_event_ids,
    receiver_records,
)
from devstack.stripe_emulator.fixtures import StripeTarget


@dataclass(frozen=True)
class Books:
    """The counts of one scenario; each list names the events behind its count."""

    emitted: list[str]
    lost: list[str]
    applied_twice: list[str]
    unknown: list[str]
    beyond_retention: list[dict[str, Any]]

    def problems(self) -> dict[str, list[Any]]:
        """What went wrong, by name: empty when every recoverable event was applied once."""
        found = {
            "events lost": self.lost,
            "events applied twice": self.applied_twice,
            "applied events Stripe never created": self.unknown,
        }
        return {name: items for name, items in found.items() if items}

    def summary(self) -> str:
        """One line of figures, for the test's log."""
        return (
            f"{len(self.emitted)} events created, {len(self.lost)} lost, "
            f"{len(self.applied_twice)} applied twice, "
            f"{len(self.beyond_retention)} beyond retention"
        )


def count_books(
    log: Sequence[Mapping[str, Any]],
    records: Sequence[ReceiverRecord],
    processed: set[str],
    types: tuple[str, ...],
    *,
    created_from: int | None = None,
) -> Books:
    """Count the books from the emulator's event `log` and the receiver's delivery `records`
    and `processed` ids of one webhook, over the events of `types` (created at or after
    `created_from` when given)."""
    counted = [
        event
        for event in log
        if event["type"] in types and (created_from is None or event["created"] >= created_from)
    ]
    retained = {str(event["id"]) for event in counted if event["retained"]}
    applied = Counter(record.event_id for record in records if record.outcome in PROCESSED)
    every_id = {str(event["id"]) for event in log}
    return Books(
        emitted=sorted(str(event["id"]) for event in counted),
        lost=sorted(event_id for event_id in retained if event_id not in processed),
        applied_twice=sorted(str(e) for e, times in applied.items() if times > 1),
        unknown=sorted(processed - every_id),
        beyond_retention=[dict(event) for event in counted if not event["retained"]],
    )


def balance(
    stripe: StripeTarget,
    api_key: str,
    database: Path,
    webhook: str,
    types: tuple[str, ...],
    *,
    created_from: int | None = None,
) -> Books:
    """Count one webhook's books now: the account's event log from the emulator against the
    receiver's SQLite `database`."""
    return count_books(
        stripe.event_log(api_key),
        receiver_records(database, webhook),
        processed_event_ids(database, webhook),
        types,
        created_from=created_from,
    )
