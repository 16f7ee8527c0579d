"""What `kubectl stripe recover` asks for and follows, and what `kubectl stripe status` shows of
recovery: the `--since` argument (a duration back from now or an RFC 3339 time, within
Stripe's 30-day retention), the two request annotations, the progress read from
`status.recovery`, and the table of open gaps and lost intervals. Pure: text and status in,
values and text out; the clock is passed in."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from stripe_webhook_operator.constants import (
    ANNOTATION_RECOVER,
    ANNOTATION_RECOVER_SINCE,
    CONDITION_RECOVERED,
    STATUS_RECOVERY,
)
from stripe_webhook_operator.gaps import BEYOND_RETENTION, RETENTION
from stripe_webhook_operator.plugin_view import NONE, condition_cell, format_table
from stripe_webhook_operator.times import (
    format_duration,
    parse_duration,
    parse_timestamp,
    rfc3339,
)

# How far back `--since` may reach: an hour short of Stripe's 30 days, so that the start is
# still within them when the operator takes the request and lists its events (at exactly 30
# days, the seconds before that are already gone and reported lost).
MARGIN: Final = timedelta(hours=1)
FURTHEST: Final = RETENTION - MARGIN
FURTHEST_TEXT: Final = format_duration(FURTHEST.total_seconds())  # '719h'
_RFC3339: Final = re.compile(
    r"\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-]\d{2}:\d{2})"
)
# How `status` shows an interval that was beyond the retention: not a gap being worked.
LOST_REASON: Final = "Lost (beyond retention)"
GAP_HEADERS: Final = (
    "FROM",
    "TO",
    "REASON",
    "LISTED",
    "ANSWERED",
    "ATTEMPTS",
    "NEXT ATTEMPT",
)


# --- the request --------------------------------------------------------------------------


def recovery_since(text: str, now: datetime) -> datetime:
    """Return the start of the interval that `--since` names, a duration back from `now` or
    an RFC 3339 time; raise ValueError saying what to write instead."""
    value = text.strip()
    example = (
        f"write a duration such as '48h' or a UTC time such as '{rfc3339(now - RETENTION / 15)}'"
    )
    try:
        seconds: float | None = parse_duration(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        if seconds <= 0:
            raise ValueError(f"`--since` '{text}' must be longer than 0; {example}.")
        since = now - timedelta(seconds=seconds)
    elif _RFC3339.fullmatch(value):
        since = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
        if since > now:
            raise ValueError(
                f"`--since` '{text}' is in the future (it is now {rfc3339(now)}); "
                f"write a time before now, or a duration such as '48h'."
            )
    else:
        raise ValueError(
            f"`--since` '{text}' is neither a duration nor an RFC 3339 time; {example}."
        )
    if now - since > FURTHEST:
        raise ValueError(
            f"`--since` '{text}' is more than {FURTHEST_TEXT} ago and Stripe keeps events for "
            f"30 days only (older ones cannot be recovered); write at most '{FURTHEST_TEXT}', "
            f"or a time after {rfc3339(now - FURTHEST)}."
        )
    return since


def recover_annotations(value: str, since: datetime) -> dict[str, str | None]:
    """Return the annotations that ask the operator to recover the events since `since`."""
    return {ANNOTATION_RECOVER: value, ANNOTATION_RECOVER_SINCE: rfc3339(since)}


# --- what status says ---------------------------------------------------------------------


def _moment(value: object) -> datetime | None:
    """An RFC 3339 time from status, None when absent or unreadable."""
    try:
        return parse_timestamp(value)
    except ValueError:
        return None


def _count(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload, no-any-return]
    except (TypeError, ValueError):
        return 0


@dataclass(frozen=True)
class Gap:
    """One open gap of `status.recovery.gaps`: `end` is None while the endpoint still cannot
    deliver."""

    start: str
    end: str | None
    reason: str
    attempts: int
    next_attempt_at: str | None
    listed: int
    answered: int

    @classmethod
    def from_status(cls, item: Mapping[str, Any]) -> Gap:
        """Read one entry of `status.recovery.gaps`."""
        return cls(
            start=str(item.get("from") or ""),
            end=item.get("to") or None,
            reason=str(item.get("reason") or ""),
            attempts=_count(item.get("attempts")),
            next_attempt_at=item.get("nextAttemptAt") or None,
            listed=_count(item.get("listed")),
            answered=_count(item.get("answered")),
        )

    def overlaps(self, since: datetime, until: datetime) -> bool:
        """Whether the gap holds any moment of [since, until] (an unreadable time counts as
        overlapping: better to wait than to call a recovery done too early)."""
        start, end = _moment(self.start), _moment(self.end)
        if start is None and self.start:
            return True
        if start is not None and start > until:
            return False
        return end is None or end >= since

    def cells(self) -> list[str]:
        """The gap's line in the table of gaps."""
        return [
            self.start or NONE,
            self.end or "(open)",
            self.reason or NONE,
            str(self.listed),
            str(self.answered),
            str(self.attempts),
            self.next_attempt_at or NONE,
        ]


@dataclass(frozen=True)
class Lost:
    """An interval whose events were beyond Stripe's retention when recovery reached them."""

    start: str
    end: str

    def overlaps(self, since: datetime, until: datetime) -> bool:
        start, end = _moment(self.start), _moment(self.end)
        return (start is None or start <= until) and (end is None or end >= since)

    def describe(self) -> str:
        return f"from {self.start} to {self.end}"


@dataclass(frozen=True)
class RecoveryProgress:
    """What `recover` reads from a StripeWebhook's status at one moment."""

    request: str | None
    gaps: tuple[Gap, ...]
    lost: tuple[Lost, ...]
    events_recovered: int
    recovered: str
    recovered_message: str

    @property
    def beyond_retention(self) -> bool:
        """Whether the `Recovered` condition says events were beyond Stripe's retention."""
        return self.recovered.endswith(f"({BEYOND_RETENTION})")

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> RecoveryProgress:
        """Read the recovery fields out of a StripeWebhook's `status`."""
        recovery = status.get(STATUS_RECOVERY) or {}
        conditions = status.get("conditions") or []
        message = next(
            (
                str(item.get("message") or "")
                for item in conditions
                if item.get("type") == CONDITION_RECOVERED
            ),
            "",
        )
        return cls(
            request=recovery.get("request") or None,
            gaps=tuple(Gap.from_status(item) for item in recovery.get("gaps") or []),
            lost=tuple(
                Lost(str(item.get("from") or ""), str(item.get("to") or ""))
                for item in recovery.get("lost") or []
            ),
            events_recovered=_count(recovery.get("eventsRecovered")),
            recovered=condition_cell(conditions, CONDITION_RECOVERED),
            recovered_message=message,
        )

    def handled(self, request: str) -> bool:
        """Whether the operator took the request `request` (it records the id it handled)."""
        return self.request == request

    def open_gaps(self, since: datetime, until: datetime) -> list[Gap]:
        """The open gaps that hold part of [since, until]."""
        return [gap for gap in self.gaps if gap.overlaps(since, until)]

    def lost_between(self, since: datetime, until: datetime) -> list[Lost]:
        """The lost intervals that hold part of [since, until]."""
        return [lost for lost in self.lost if lost.overlaps(since, until)]

    def describe(self, request: str, since: datetime, until: datetime) -> str:
        """One progress line for people."""
        if not self.handled(request):
            return f"waiting for the operator to take the request; Recovered {self.recovered}"
        gaps = self.open_gaps(since, until)
        if not gaps:
            return f"no gap open; Recovered {self.recovered}"
        oldest = min(gaps, key=lambda gap: gap.start)
        line = (
            f"gaps open: {len(gaps)} (oldest from {oldest.start}, {oldest.reason}), "
            f"events listed {sum(g.listed for g in gaps)}, "
            f"answered {sum(g.answered for g in gaps)}, "
            f"attempts {sum(g.attempts for g in gaps)}"
        )
        waiting = sorted(g.next_attempt_at for g in gaps if g.next_attempt_at)
        if waiting:
            line += f", next attempt at {waiting[0]}"
        return f"{line}; Recovered {self.recovered}"


def done_sentence(
    namespace: str, name: str, since: datetime, start: RecoveryProgress, end: RecoveryProgress
) -> str:
    """Say that the events since `since` reached the receiver, and how many were redelivered."""
    redelivered = max(end.events_recovered - start.events_recovered, 0)
    return (
        f"Recovery of '{namespace}/{name}' since {rfc3339(since)} done: no gap open, "
        f"{redelivered} events redelivered with a definite answer.\n"
    )


def lost_sentence(namespace: str, name: str, lost: Sequence[Lost], message: str) -> str:
    """Say which events cannot be recovered because Stripe no longer keeps them."""
    intervals = ", ".join(item.describe() for item in lost) or message
    return (
        f"Recovery of '{namespace}/{name}' done, but the events {intervals} were beyond Stripe's "
        "30-day retention and cannot be recovered; rebuild that period from another source "
        "(e.g. list the subscriptions through Stripe's API) and see docs/recovery.md."
    )


# --- `status` -----------------------------------------------------------------------------


def gaps_table(webhooks: Sequence[Mapping[str, Any]]) -> str:
    """Return, for each StripeWebhook with open gaps or lost intervals, their lines; empty
    when there are none."""
    sections = []

    def name_of(webhook: Mapping[str, Any]) -> tuple[str, str]:
        metadata = webhook.get("metadata") or {}
        return str(metadata.get("namespace", "")), str(metadata.get("name", ""))

    for webhook in sorted(webhooks, key=name_of):
        progress = RecoveryProgress.from_status(webhook.get("status") or {})
        if not progress.gaps and not progress.lost:
            continue
        rows = [gap.cells() for gap in progress.gaps]
        rows += [[lost.start, lost.end, LOST_REASON, *[NONE] * 4] for lost in progress.lost]
        namespace, name = name_of(webhook)
        title = f"\nRecovery gaps of {namespace}/{name}:\n"
        sections.append(title + format_table(GAP_HEADERS, rows))
    return "".join(sections)
