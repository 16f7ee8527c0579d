"""The tally's arithmetic on hand-made books (no stack): what counts as applied once, as a
duplicate, and as a refusal after the new endpoint's enable."""

from __future__ import annotations

from typing import Any

from devstack.project.rotation.tally import ReceiverRecord, count


def attempt(endpoint: str, event: str, status: int | None, at: float) -> dict[str, Any]:
    return {"endpoint": endpoint, "event": event, "status": status, "time": at}


def record(event: str, outcome: str, status: int = 200) -> ReceiverRecord:
    return ReceiverRecord(event, outcome, status, "f" * 16, 0.0)


def test_a_duplicate_is_not_applied_twice() -> None:
    tally = count(
        {"evt_1", "evt_2"},
        [attempt("we_old", "evt_1", 200, 1.0), attempt("we_new", "evt_1", 200, 5.0)],
        [record("evt_1", "applied"), record("evt_1", "duplicate"), record("evt_2", "stale")],
        {"evt_1", "evt_2"},
        old_endpoint="we_old",
        new_enabled_since=4.0,
    )
    assert tally.problems() == {}
    assert tally.duplicates_delivered == 1
    assert tally.events_sent == 2


def test_refusals_count_after_the_enable_and_from_the_old_endpoint() -> None:
    attempts = [
        attempt("we_new", "evt_1", 400, 1.0),  # Stripe created it enabled: before the enable
        attempt("we_new", "evt_2", 400, 5.0),
        attempt("we_old", "evt_3", 400, 2.0),
        attempt("we_old", "evt_3", None, 3.0),
    ]
    tally = count(
        {"evt_1", "evt_2", "evt_3"},
        attempts,
        [
            record("evt_1", "applied"),
            record("evt_2", "applied"),
            record("evt_2", "applied"),
            ReceiverRecord(None, "no_matching_signature", 400, None, 1.0),
            late := ReceiverRecord(None, "no_matching_signature", 400, None, 5.0),
        ],
        {"evt_1", "evt_2", "evt_9"},
        old_endpoint="we_old",
        new_enabled_since=4.0,
    )
    problems = tally.problems()
    assert problems["refused after the new endpoint was enabled"] == [late]
    assert problems["refused from the old endpoint"] == [attempts[2]]
    assert [item["event"] for item in problems["events never applied"]] == ["evt_3"]
    assert problems["events applied twice"] == ["evt_2"]
    assert problems["applied events Stripe never sent"] == ["evt_9"]
    assert tally.failed_attempts == {"400": 3, "no answer": 1}
