"""Recovery gaps as status.recovery keeps them: opened, closed, merged, bounded, cut at Stripe's
retention, retried with backoff, and the Recovered condition they call for (gaps.py; the clock
is a fixed moment passed in, never today's date)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stripe_webhook_operator import gaps
from stripe_webhook_operator.gaps import Gap
from stripe_webhook_operator.times import rfc3339

NOW = datetime(2031, 5, 17, 12, 0, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def at(minutes: float) -> datetime:
    return NOW + timedelta(minutes=minutes)


def stored(*items: Gap) -> dict[str, Any]:
    return gaps.with_gaps({}, items)


def test_an_opened_gap_is_stored_open_with_its_reason_and_read_back() -> None:
    recovery = gaps.open_gap({}, at(-10), gaps.NOT_YET_ENABLED)
    assert recovery["gaps"] == [
        {
            "from": rfc3339(at(-10)),
            "reason": "NotYetEnabled",
            "attempts": 0,
            "listed": 0,
            "answered": 0,
        }
    ]
    (gap,) = gaps.read_gaps(recovery)
    assert not gap.closed
    assert gap.holds(at(100))
    assert not gap.due(NOW)


def test_closing_ends_only_the_open_gaps_of_the_reasons_named() -> None:
    recovery = gaps.open_gap({}, at(-10), gaps.DISABLED_BY_STRIPE)
    assert gaps.close_gaps(recovery, gaps.UNTIL_ENABLED, NOW) is None
    closed = gaps.close_gaps(recovery, (gaps.DISABLED_BY_STRIPE,), NOW)
    assert closed is not None
    (gap,) = gaps.read_gaps(closed)
    assert gap.end == NOW
    assert gap.due(NOW)


def test_overlapping_and_touching_gaps_merge_and_join_their_reasons() -> None:
    recovery = stored(
        Gap(at(-30), at(-20), (gaps.DELIVERY_FAILED,)),
        Gap(at(-20), at(-10), (gaps.REQUESTED,)),
        Gap(at(-25), None, (gaps.ENDPOINT_DELETED,)),
    )
    (gap,) = gaps.read_gaps(recovery)
    assert gap.start == at(-30)
    assert gap.end is None
    assert recovery["gaps"][0]["reason"] == "DeliveryFailed,EndpointDeleted,Requested"


def test_separate_gaps_stay_apart_oldest_first() -> None:
    recovery = stored(Gap(at(-5), at(-4), (gaps.REQUESTED,)), Gap(at(-50), at(-40), ("X",)))
    assert [g.start for g in gaps.read_gaps(recovery)] == [at(-50), at(-5)]


def test_beyond_twenty_the_nearest_gaps_merge_into_one_covering_both() -> None:
    many = [Gap(at(-100 + 3 * i), at(-99 + 3 * i), (gaps.DELIVERY_FAILED,)) for i in range(20)]
    near = Gap(at(-99.5 + 3 * 5), at(-99.2 + 3 * 5), (gaps.REQUESTED,))
    recovery = stored(*many, near)
    kept = gaps.read_gaps(recovery)
    assert len(kept) == gaps.MAX_GAPS
    # Every moment of every gap given is still covered by some kept gap.
    for gap in [*many, near]:
        assert any(k.holds(gap.start) and k.holds(gap.end or NOW) for k in kept)


def test_what_stripe_no_longer_keeps_is_cut_off_and_reported_lost() -> None:
    retention = timedelta(days=30)
    old = Gap(NOW - timedelta(days=40), NOW - timedelta(days=35), (gaps.REQUESTED,))
    straddling = Gap(NOW - timedelta(days=31), NOW - timedelta(days=29), (gaps.REQUESTED,))
    recent = Gap(at(-10), at(-5), (gaps.DELIVERY_FAILED,))
    kept, lost = gaps.split_retention([old, straddling, recent], NOW, retention)
    cutoff = NOW - retention
    assert [(k.start, k.end) for k in kept] == [(cutoff, straddling.end), (at(-10), at(-5))]
    assert [(x.start, x.end) for x in lost] == [(old.start, old.end), (straddling.start, cutoff)]


def test_a_shorter_retention_setting_moves_the_cutoff() -> None:
    gap = Gap(at(-90), at(-10), (gaps.REQUESTED,))
    kept, lost = gaps.split_retention([gap], NOW, timedelta(hours=1))
    assert kept[0].start == at(-60)
    assert lost[0].end == at(-60)


def test_lost_intervals_are_bounded_and_a_recover_request_acknowledges_them() -> None:
    recovery: dict[str, Any] = {}
    for i in range(gaps.MAX_LOST + 3):
        recovery = gaps.with_lost(recovery, [gaps.Lost(at(-100 + i), at(-99 + i))])
    assert len(recovery["lost"]) == gaps.MAX_LOST
    assert gaps.condition(recovery, NOW).reason == gaps.BEYOND_RETENTION
    after = gaps.request(recovery, "r-1", at(-60), NOW)
    assert after["lost"] == []
    assert after["request"] == "r-1"
    (gap,) = gaps.read_gaps(after)
    assert (gap.start, gap.end, gap.reasons) == (at(-60), NOW, (gaps.REQUESTED,))


def test_backoff_doubles_from_the_base_up_to_an_hour() -> None:
    base = timedelta(seconds=30)
    waits = [gaps.backoff(n, base) for n in (1, 2, 3, 4)]
    assert waits == [base, base * 2, base * 4, base * 8]
    assert gaps.backoff(50, base) == gaps.BACKOFF_CAP


def test_a_failed_attempt_resumes_at_the_first_unanswered_event_after_the_backoff() -> None:
    gap = Gap(at(-30), at(-10), (gaps.DELIVERY_FAILED,))
    retried = gaps.failed(gap, at(-20), NOW, timedelta(seconds=30))
    assert retried.start == at(-20)
    assert retried.end == at(-10)
    assert retried.attempts == 1
    assert retried.next_attempt == NOW + timedelta(seconds=30)
    assert not retried.due(NOW)
    assert retried.due(NOW + timedelta(seconds=30))
    again = gaps.failed(retried, None, NOW, timedelta(seconds=30))
    assert again.next_attempt == NOW + timedelta(seconds=60)


def test_the_condition_says_no_open_gaps_recovering_or_retrying() -> None:
    assert gaps.condition({}, NOW).reason == gaps.NO_OPEN_GAPS
    assert gaps.condition({}, NOW).status == "True"
    waiting = stored(Gap(at(-30), at(-10), (gaps.REQUESTED,)))
    recovering = gaps.condition(waiting, NOW)
    assert (recovering.status, recovering.reason) == ("False", gaps.RECOVERING)
    assert rfc3339(at(-30)) in recovering.message
    retrying = stored(gaps.failed(Gap(at(-30), at(-10), ("R",)), None, NOW, MINUTE))
    retrying["lastError"] = "the receiver answered 503"
    condition = gaps.condition(retrying, NOW)
    assert condition.reason == gaps.RETRYING_GAP
    assert "503" in condition.message
    assert rfc3339(NOW + MINUTE) in condition.message


def test_the_covering_interval_spans_closed_gaps_only() -> None:
    assert gaps.covering([Gap(at(-5), None, ("R",))]) is None
    span = gaps.covering([Gap(at(-50), at(-40), ("R",)), Gap(at(-5), at(-1), ("R",))])
    assert span == (at(-50), at(-1))


def test_the_oldest_gap_age_is_counted_from_the_oldest_start() -> None:
    assert gaps.oldest_age([], NOW) == 0.0
    assert gaps.oldest_age([Gap(at(-2), None, ("R",)), Gap(at(-5), at(-4), ("R",))], NOW) == 300


@pytest.mark.parametrize("since", [None, "", "yesterday", rfc3339(at(60))])
def test_a_since_that_is_not_a_past_rfc3339_time_says_what_to_write(since: str | None) -> None:
    with pytest.raises(ValueError, match=r"stripe\.operator\.dev/recover-since"):
        gaps.parse_since(since, NOW)


def test_a_past_since_is_read() -> None:
    assert gaps.parse_since(rfc3339(at(-120)), NOW) == at(-120)


def test_seen_delivering_prefers_memory_then_the_stamp_then_the_creation() -> None:
    stamp = {"checkedAt": rfc3339(at(-30))}
    assert gaps.seen_delivering(stamp, at(-1), at(-999)) == at(-1)
    assert gaps.seen_delivering(stamp, None, at(-999)) == at(-30)
    assert gaps.seen_delivering({}, None, at(-999)) == at(-999)
    assert not gaps.checkpoint_due(stamp, NOW)
    assert gaps.checkpoint_due(stamp, at(-30) + gaps.CHECKPOINT_EVERY)


def test_a_scan_records_one_gap_over_its_failed_deliveries_and_stamps_it_hourly() -> None:
    recovery = gaps.scanned({}, [at(-3), at(-9), at(-5)], NOW)
    (gap,) = gaps.read_gaps(recovery)
    assert (gap.start, gap.end, gap.reasons) == (at(-9), at(-3), (gaps.DELIVERY_FAILED,))
    assert gaps.scanned_until(recovery) == NOW
    # Within the hour the stamp stays (status is not rewritten for it); after, it moves.
    assert gaps.scanned(recovery, [], at(30)) == recovery
    later = NOW + gaps.CHECKPOINT_EVERY
    assert gaps.scanned_until(gaps.scanned(recovery, [], later)) == later


def test_a_failed_attempt_keeps_what_it_listed_and_answered() -> None:
    gap = Gap(at(-30), at(-10), (gaps.REQUESTED,))
    retried = gaps.failed(gap, at(-20), NOW, MINUTE, listed=7, answered=4)
    assert (retried.listed, retried.answered) == (7, 4)
    (stored_gap,) = gaps.with_gaps({}, [retried])["gaps"]
    assert (stored_gap["listed"], stored_gap["answered"]) == (7, 4)
