"""What a load run measured, and the statistics taken over repeated runs."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoadResult:
    """What one load run measured. Latencies in milliseconds."""

    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    errors: int = 0
    # Requests sent after the pool ran out (not events, never answered 2xx): the rate is
    # understated when this is not 0, but every 2xx is still a distinct event.
    exhausted: int = 0

    @property
    def ok(self) -> int:
        """Responses with a 2xx status."""
        return sum(count for status, count in self.statuses.items() if 200 <= status < 300)

    @property
    def rate(self) -> float:
        """2xx responses per second."""
        return self.ok / self.seconds if self.seconds > 0 else 0.0

    @property
    def failed(self) -> int:
        """Requests that got no 2xx: other statuses plus socket-level errors."""
        return self.requests - self.ok + self.errors


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Return the nearest-rank percentile (`fraction` in 0..1) of already sorted values."""
    if not sorted_values:
        return float("nan")
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


@dataclass(frozen=True)
class Spread:
    """The median of repeated measurements with their minimum and maximum."""

    median: float
    low: float
    high: float
    count: int

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        """Summarise `values` (at least one)."""
        if not values:
            return cls(float("nan"), float("nan"), float("nan"), 0)
        return cls(statistics.median(values), min(values), max(values), len(values))


def ratio(numerator: Spread, denominator: Spread) -> float:
    """Return the ratio of two medians (nan when the denominator is zero or missing)."""
    if not denominator.median or denominator.median != denominator.median:
        return float("nan")
    return numerator.median / denominator.median
