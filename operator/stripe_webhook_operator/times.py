"""Durations and timestamps as the CRD, status, flags and the kubectl plugin write them, and
the wall clock.

Durations are Go's (`24h`, `1h30m`, `90s`, `0`); timestamps are RFC 3339 in UTC with a `Z`, as
Kubernetes writes them. The wall clock is read here only (`utc_now`) and handed on as a
`Clock`, so that a test passes a fixed one instead: no code or test depends on today's date.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Final

Clock = Callable[[], datetime]

_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")


def utc_now() -> datetime:
    """Return the current time, timezone-aware: the one reading of the wall clock."""
    return datetime.now(UTC)


def parse_duration(text: str) -> float:
    """Return the number of seconds `text` names, or raise ValueError saying what to write."""
    value = text.strip()
    if value in {"0", "0s"}:
        return 0.0
    position = 0
    total = 0.0
    for match in _PART.finditer(value):
        if match.start() != position:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        position = match.end()
    if position != len(value) or not value:
        raise ValueError(
            f"'{text}' is not a duration; write a number with a unit such as '90s', '30m' or '24h'."
        )
    return total


def format_duration(seconds: float) -> str:
    """Return `seconds` as a short Go-style duration (`1h30m`, `45s`, `0s`)."""
    remaining = round(seconds)
    if remaining == 0:
        return "0s"
    parts = []
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        count, remaining = divmod(remaining, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def rfc3339(moment: datetime, *, microseconds: bool = False) -> str:
    """Return `moment` as RFC 3339 UTC with a Z, to the second (or the microsecond)."""
    pattern = "%Y-%m-%dT%H:%M:%S.%fZ" if microseconds else "%Y-%m-%dT%H:%M:%SZ"
    return moment.astimezone(UTC).strftime(pattern)


def parse_timestamp(value: object) -> datetime | None:
    """Return an RFC 3339 timestamp as an aware datetime (UTC when it names no zone), None for
    an empty value; raise ValueError for text that is not a timestamp."""
    if not value:
        return None
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
