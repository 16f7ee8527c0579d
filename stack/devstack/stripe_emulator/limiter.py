"""The per-account request rate limit, a token bucket refilled at `rate` tokens per second."""

from __future__ import annotations

import time


class TokenBucket:
    """Admit at most `rate` requests per second on average, with bursts up to `rate`."""

    def __init__(self, rate: float) -> None:
        if rate <= 0:
            raise ValueError(f"rate limit must be positive, got {rate}")
        self.rate = rate
        self.capacity = max(rate, 1.0)
        self._tokens = self.capacity
        self._stamp = time.monotonic()

    def admit(self) -> bool:
        """Take one token if one is there; return whether the request may proceed."""
        moment = time.monotonic()
        self._tokens = min(self.capacity, self._tokens + (moment - self._stamp) * self.rate)
        self._stamp = moment
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
