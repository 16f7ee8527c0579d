"""The books' arithmetic on hand-made logs and records (no stack): an event never applied is
lost, one applied by two deliveries is applied twice, a redelivered duplicate is neither, and
events beyond the retention are counted apart, never as recovered."""

from __future__ import annotations

from typing import Any

from devstack.project.recovery.books import count_books
from devstack.project.rotation.tally import ReceiverRecord

UPDATED = "customer.subscription.updated"


def event(event_id: str, created: int = 100, retained: bool = True, kind: str = UPDATED) -> dict:
    return {"id": event_id, "type": kind, "created": created, "retained": retained}


def record(event_id: str, outcome: str) -> ReceiverRecord:
    return ReceiverRecord(event_id, outcome, 200, "f" * 16, 0.0)


def books(log: list[dict[str, Any]], records: list[ReceiverRecord], **options: Any) -> Any:
    processed = {r.event_id for r in records if r.event_id and r.outcome != "duplicate"}
    return count_books(log, records, processed, (UPDATED,), **options)


def test_a_redelivered_duplicate_is_neither_lost_nor_applied_twice() -> None:
    counted = books(
        [event("evt_1"), event("evt_2")],
        [record("evt_1", "applied"), record("evt_1", "duplicate"), record("evt_2", "stale")],
    )
    assert counted.problems() == {}
    assert counted.emitted == ["evt_1", "evt_2"]


def test_missing_and_doubled_events_are_named() -> None:
    counted = books(
        [event("evt_1"), event("evt_2"), event("evt_3")],
        [
            record("evt_1", "applied"),
            record("evt_1", "replayed_applied"),
            record("evt_9", "applied"),
        ],
    )
    assert counted.problems() == {
        "events lost": ["evt_2", "evt_3"],
        "events applied twice": ["evt_1"],
        "applied events Stripe never created": ["evt_9"],
    }


def test_events_beyond_retention_are_counted_apart_and_other_types_not_at_all() -> None:
    counted = books(
        [
            event("evt_old", created=5, retained=False),
            event("evt_new", created=200),
            event("evt_created", kind="customer.subscription.created"),
        ],
        [record("evt_new", "applied")],
    )
    assert counted.problems() == {}
    assert [item["id"] for item in counted.beyond_retention] == ["evt_old"]
    assert counted.emitted == ["evt_new", "evt_old"]
    later = books([event("evt_a", created=10), event("evt_b", created=20)], [], created_from=15)
    assert later.lost == ["evt_b"]
