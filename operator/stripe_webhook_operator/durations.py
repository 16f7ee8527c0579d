"""Go-style durations (`24h`, `1h30m`, `90s`, `0`) as used by the CRD and the operator's flags."""

from __future__ import annotations

import re
from typing import Final

_UNITS: Final = {"ns": 1e-9, "us": 1e-6, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_PART: Final = re.compile(r"(\d+(?:\.\d+)?)(ns|us|ms|s|m|h)")


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
