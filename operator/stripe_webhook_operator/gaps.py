"""Recovery gaps: the intervals during which a webhook's endpoint could not have delivered,
kept in `status.recovery` (so a restart or a restore of the cluster forgets none), as pure
functions from what is stored and what was observed to what is stored next.

    status.recovery = {
      gaps: [{from, to?, reason, attempts, nextAttemptAt?, listed, answered}],  # at most 20
      request: the last `stripe.operator.dev/recover` value handled,
      lost: [{from, to}],          # intervals beyond Stripe's retention (at most 10)
      eventsRecovered: int, lastRecoveryTime: RFC 3339,
      checkedAt: RFC 3339,         # the endpoint last seen delivering, as made durable
      scannedUntil: RFC 3339,      # failed deliveries scanned up to here, as made durable
    }

A gap without `to` is still open: the endpoint does not deliver yet (created disabled, disabled
by Stripe, deleted); recovery waits until it closes. Gaps that overlap or touch are merged
(reasons joined with a comma); beyond the bound, the two nearest are merged into one that
covers both, which lists a few events more and loses none. Every function returns new data and
leaves its arguments alone; the clock is always passed in.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import constants as c
from stripe_webhook_operator.times import parse_timestamp, rfc3339

# Reasons a gap was recorded.
NOT_YET_ENABLED: Final = "NotYetEnabled"
DISABLED_BY_STRIPE: Final = "DisabledByStripe"
ENDPOINT_DELETED: Final = "EndpointDeleted"
DELIVERY_FAILED: Final = "DeliveryFailed"
REQUESTED: Final = "Requested"
REASONS: Final = (NOT_YET_ENABLED, DISABLED_BY_STRIPE, ENDPOINT_DELETED, DELIVERY_FAILED, REQUESTED)
# Reasons whose gap closes when the (new) endpoint is enabled.
UNTIL_ENABLED: Final = (NOT_YET_ENABLED, ENDPOINT_DELETED)

MAX_GAPS: Final = 20
MAX_LOST: Final = 10
RETENTION: Final = timedelta(days=30)
# Backoff of a gap whose delivery failed: base * 2^(attempts-1), at most the cap.
BACKOFF_CAP: Final = timedelta(hours=1)
# The durable "seen delivering" stamp is rewritten at most this often: a gap that starts at it
# starts at most this much too early (a few events listed again, deduped by the receiver).
CHECKPOINT_EVERY: Final = timedelta(hours=1)

# Reasons of the `Recovered` condition.
NO_OPEN_GAPS: Final = "NoOpenGaps"
RECOVERING: Final = "Recovering"
RETRYING_GAP: Final = "RetryingGap"
BEYOND_RETENTION: Final = "BeyondRetention"
INVALID_REQUEST: Final = "InvalidRecoverRequest"


@dataclass(frozen=True)
class Gap:
    """One interval to recover; `end` None while it is still open."""

    start: datetime
    end: datetime | None
    reasons: tuple[str, ...]
    attempts: int = 0
    next_attempt: datetime | None = None
    listed: int = 0
    answered: int = 0

    @property
    def closed(self) -> bool:
        return self.end is not None

    def due(self, now: datetime) -> bool:
        """Whether recovery should work on it now: closed, and not waiting for a retry."""
        return self.closed and (self.next_attempt is None or self.next_attempt <= now)

    def holds(self, moment: datetime) -> bool:
        """Whether `moment` lies within the gap (an open one reaches to any time)."""
        return self.start <= moment and (self.end is None or moment <= self.end)

    def to_status(self) -> dict[str, Any]:
        item: dict[str, Any] = {
            "from": rfc3339(self.start),
            "reason": ",".join(self.reasons),
            "attempts": self.attempts,
            "listed": self.listed,
            "answered": self.answered,
        }
        if self.end is not None:
            item["to"] = rfc3339(self.end)
        if self.next_attempt is not None:
            item["nextAttemptAt"] = rfc3339(self.next_attempt)
        return item


@dataclass(frozen=True)
class Lost:
    """An interval whose events Stripe no longer keeps."""

    start: datetime
    end: datetime

    def to_status(self) -> dict[str, str]:
        return {"from": rfc3339(self.start), "to": rfc3339(self.end)}


def _time(value: object) -> datetime | None:
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def read_gaps(recovery: Mapping[str, Any] | None) -> list[Gap]:
    """Return the gaps stored in `status.recovery`, oldest first (unreadable entries dropped:
    only the operator writes them)."""
    gaps = []
    for item in (recovery or {}).get("gaps") or ():
        start = _time(item.get("from"))
        if start is None:
            continue
        reasons = tuple(r for r in str(item.get("reason") or "").split(",") if r)
        gaps.append(
            Gap(
                start,
                _time(item.get("to")),
                reasons or (REQUESTED,),
                int(item.get("attempts") or 0),
                _time(item.get("nextAttemptAt")),
                int(item.get("listed") or 0),
                int(item.get("answered") or 0),
            )
        )
    return sorted(gaps, key=lambda gap: gap.start)


def read_lost(recovery: Mapping[str, Any] | None) -> list[Lost]:
    """Return the lost intervals stored in `status.recovery`."""
    lost = []
    for item in (recovery or {}).get("lost") or ():
        start, end = _time(item.get("from")), _time(item.get("to"))
        if start is not None and end is not None:
            lost.append(Lost(start, end))
    return lost


def with_gaps(recovery: Mapping[str, Any] | None, gaps: Iterable[Gap]) -> dict[str, Any]:
    """Return a copy of `status.recovery` holding `gaps` (merged and bounded)."""
    result = copy.deepcopy(dict(recovery or {}))
    result["gaps"] = [gap.to_status() for gap in bound(merge(gaps))]
    return result


def _joined(first: Sequence[str], second: Sequence[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys([*first, *second]))


def _hull(a: Gap, b: Gap) -> Gap:
    """One gap covering both; open if either is; the retry state of the one retried most."""
    end = None if a.end is None or b.end is None else max(a.end, b.end)
    retried = a if a.attempts >= b.attempts else b
    return Gap(
        min(a.start, b.start),
        end,
        _joined(a.reasons, b.reasons),
        retried.attempts,
        retried.next_attempt,
        0,
        0,
    )


def _touch(a: Gap, b: Gap) -> bool:
    """Whether `b` (starting no earlier than `a`) overlaps or touches `a`."""
    return a.end is None or b.start <= a.end


def merge(gaps: Iterable[Gap]) -> list[Gap]:
    """Return `gaps` with every overlapping or touching pair merged, oldest first."""
    result: list[Gap] = []
    for gap in sorted(gaps, key=lambda g: g.start):
        if result and _touch(result[-1], gap):
            result[-1] = _hull(result[-1], gap)
        else:
            result.append(gap)
    return result


def bound(gaps: Sequence[Gap], limit: int = MAX_GAPS) -> list[Gap]:
    """Return at most `limit` gaps: the two nearest neighbours merged until few enough."""
    result = list(gaps)
    while len(result) > limit:
        distances = [
            (result[i + 1].start - (result[i].end or result[i + 1].start)).total_seconds()
            for i in range(len(result) - 1)
        ]
        nearest = distances.index(min(distances))
        result[nearest : nearest + 2] = [_hull(result[nearest], result[nearest + 1])]
    return result


def open_gap(
    recovery: Mapping[str, Any] | None, start: datetime, reason: str, end: datetime | None = None
) -> dict[str, Any]:
    """Return `status.recovery` with a gap from `start` (to `end`, or open) for `reason`."""
    return with_gaps(recovery, [*read_gaps(recovery), Gap(start, end, (reason,))])


def close_gaps(
    recovery: Mapping[str, Any] | None, reasons: Sequence[str], now: datetime
) -> dict[str, Any] | None:
    """Return `status.recovery` with its open gaps of `reasons` closed at `now`, or None when
    none was open."""
    gaps = read_gaps(recovery)
    if not any(gap.end is None and set(gap.reasons) & set(reasons) for gap in gaps):
        return None
    closed = [
        Gap(g.start, now, g.reasons, g.attempts, g.next_attempt, g.listed, g.answered)
        if g.end is None and set(g.reasons) & set(reasons)
        else g
        for g in gaps
    ]
    return with_gaps(recovery, closed)


def has_open(recovery: Mapping[str, Any] | None, reason: str) -> bool:
    """Whether a gap recorded for `reason` is still open."""
    return any(g.end is None and reason in g.reasons for g in read_gaps(recovery))


def retention_cutoff(now: datetime, retention: timedelta = RETENTION) -> datetime:
    """Return the oldest moment whose events Stripe still keeps at `now`."""
    return now - retention


def split_retention(
    gaps: Sequence[Gap], now: datetime, retention: timedelta = RETENTION
) -> tuple[list[Gap], list[Lost]]:
    """Return the parts of `gaps` Stripe still keeps, and the parts beyond its retention."""
    cutoff = retention_cutoff(now, retention)
    kept: list[Gap] = []
    lost: list[Lost] = []
    for gap in gaps:
        if gap.start >= cutoff:
            kept.append(gap)
            continue
        end = gap.end if gap.end is not None else now
        lost.append(Lost(gap.start, min(end, cutoff)))
        if end > cutoff:
            kept.append(Gap(cutoff, gap.end, gap.reasons, gap.attempts, gap.next_attempt, 0, 0))
    return kept, lost


def with_lost(recovery: Mapping[str, Any] | None, lost: Iterable[Lost]) -> dict[str, Any]:
    """Return `status.recovery` with `lost` added to its lost intervals (the newest kept)."""
    result = copy.deepcopy(dict(recovery or {}))
    every = [*read_lost(recovery), *lost]
    result["lost"] = [item.to_status() for item in every[-MAX_LOST:]]
    return result


def backoff(attempts: int, base: timedelta) -> timedelta:
    """Return the wait before retrying a gap whose delivery failed `attempts` times (1 on the
    first failure): doubling from `base`, at most an hour."""
    exponent = min(max(attempts - 1, 0), 30)
    wait: timedelta = base * float(2**exponent)
    return min(wait, BACKOFF_CAP)


def failed(
    gap: Gap,
    first_unanswered: datetime | None,
    now: datetime,
    base: timedelta,
    listed: int = 0,
    answered: int = 0,
) -> Gap:
    """Return `gap` after a try in which not every one of its `listed` events got a definite
    answer (`answered` did): it resumes at the first event without one, and waits for its next
    attempt."""
    attempts = gap.attempts + 1
    start = max(gap.start, first_unanswered) if first_unanswered is not None else gap.start
    wait = now + backoff(attempts, base)
    return Gap(start, gap.end, gap.reasons, attempts, wait, listed, answered)


def covering(gaps: Iterable[Gap]) -> tuple[datetime, datetime] | None:
    """Return the interval from the oldest start to the newest end of closed `gaps`."""
    closed = [gap for gap in gaps if gap.end is not None]
    if not closed:
        return None
    return min(g.start for g in closed), max(g.end for g in closed if g.end is not None)


def oldest_age(gaps: Sequence[Gap], now: datetime) -> float:
    """Return the seconds since the oldest gap began (0 without gaps)."""
    if not gaps:
        return 0.0
    return max((now - min(gap.start for gap in gaps)).total_seconds(), 0.0)


def parse_since(value: str | None, now: datetime) -> datetime:
    """Return the start of a recover request, or raise ValueError saying what to write."""
    hint = (
        f"set `{c.ANNOTATION_RECOVER_SINCE}` to an RFC 3339 UTC time in the past such as "
        f"'{rfc3339(now - timedelta(hours=48))}' (or run "
        "`kubectl stripe recover NAME --since 48h`)."
    )
    if not value:
        raise ValueError(f"`{c.ANNOTATION_RECOVER}` is set without a start; {hint}")
    try:
        since = parse_timestamp(value)
    except ValueError:
        since = None
    if since is None:
        raise ValueError(f"'{value}' is not an RFC 3339 time; {hint}")
    if since > now:
        raise ValueError(f"'{value}' is in the future; {hint}")
    return since


def request(
    recovery: Mapping[str, Any] | None, request_id: str, since: datetime, now: datetime
) -> dict[str, Any]:
    """Return `status.recovery` after an admin's recover request: a gap [since, now], the
    request remembered, and the lost intervals reported so far acknowledged (dropped)."""
    result = open_gap(recovery, since, REQUESTED, now)
    result["request"] = request_id
    # Emptied, not removed: status is written as a merge patch, which keeps absent keys.
    result["lost"] = []
    return result


def condition(recovery: Mapping[str, Any] | None, now: datetime) -> cond.Condition:
    """Return the `Recovered` condition `status.recovery` calls for."""
    lost = read_lost(recovery)
    gaps = read_gaps(recovery)
    kind = c.CONDITION_RECOVERED
    if lost:
        spans = ", ".join(f"{rfc3339(x.start)} to {rfc3339(x.end)}" for x in lost[-3:])
        return cond.Condition(
            kind,
            cond.FALSE,
            BEYOND_RETENTION,
            f"Events from {spans} are older than Stripe's retention and cannot be recovered; "
            "reconcile those subscribers by hand, then acknowledge with `kubectl stripe recover "
            "NAME --since <time>`.",
        )
    retrying = [g for g in gaps if g.attempts > 0 and g.next_attempt is not None]
    if retrying:
        gap = retrying[0]
        note = str((recovery or {}).get("lastError") or "a delivery got no definite answer")
        assert gap.next_attempt is not None
        return cond.Condition(
            kind,
            cond.FALSE,
            RETRYING_GAP,
            f"Redelivering the gap from {rfc3339(gap.start)} failed ({note}); attempt "
            f"{gap.attempts + 1} at {rfc3339(gap.next_attempt)}.",
        )
    if gaps:
        return cond.Condition(
            kind,
            cond.FALSE,
            RECOVERING,
            f"{len(gaps)} gap(s) to recover, the oldest from {rfc3339(gaps[0].start)}.",
        )
    return cond.Condition(kind, cond.TRUE, NO_OPEN_GAPS, "No events are waiting for recovery.")


def invalid_request(message: str) -> cond.Condition:
    """Return `Recovered=False` for a recover request the operator cannot read."""
    return cond.Condition(c.CONDITION_RECOVERED, cond.FALSE, INVALID_REQUEST, message)


CHECKED_AT: Final = "checkedAt"
SCANNED_UNTIL: Final = "scannedUntil"


def checkpoint_due(
    recovery: Mapping[str, Any] | None, now: datetime, field: str = CHECKED_AT
) -> bool:
    """Whether a durable stamp (`checkedAt`, `scannedUntil`) is old enough to be written
    again: at most once per CHECKPOINT_EVERY, so that a healthy webhook's status stays still."""
    stamp = _time((recovery or {}).get(field))
    return stamp is None or now - stamp >= CHECKPOINT_EVERY


def scanned_until(recovery: Mapping[str, Any] | None) -> datetime | None:
    """Return up to when failed deliveries were scanned, as last made durable."""
    return _time((recovery or {}).get(SCANNED_UNTIL))


def scanned(
    recovery: Mapping[str, Any] | None, moments: Sequence[datetime], until: datetime
) -> dict[str, Any]:
    """Return `status.recovery` after a scan up to `until` found failed deliveries created at
    `moments` (one `DeliveryFailed` gap spanning them), its stamp rewritten when due."""
    result = dict(recovery or {})
    if moments:
        result = open_gap(result, min(moments), DELIVERY_FAILED, max(moments))
    if checkpoint_due(recovery, until, SCANNED_UNTIL):
        result[SCANNED_UNTIL] = rfc3339(until)
    return result


def seen_delivering(
    recovery: Mapping[str, Any] | None, remembered: datetime | None, fallback: datetime
) -> datetime:
    """Return the last moment the endpoint is known to have delivered: the one this process
    remembers, else the durable stamp, else `fallback` (the resource's creation)."""
    if remembered is not None:
        return remembered
    return _time((recovery or {}).get(CHECKED_AT)) or fallback
