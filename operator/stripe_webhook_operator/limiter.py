"""One token bucket for every Stripe call of the process, whatever the number of webhooks and
accounts, so the operator stays under Stripe's rate limit (test mode: 25 requests/s)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """Admit `rate` calls per second on average and at most `burst` at once."""

    def __init__(
        self, rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("`rate` must be positive and `burst` at least 1.")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._tokens = float(burst)
        self._updated = clock()
        self._lock = asyncio.Lock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.burst, self._tokens + (now - self._updated) * self.rate)
        self._updated = now

    def try_take(self) -> float:
        """Take a token if one is there and return 0, else return the seconds until one is."""
        self._refill()
        if self._tokens >= 1:
            self._tokens -= 1
            return 0.0
        return (1 - self._tokens) / self.rate

    async def acquire(self) -> None:
        """Wait until a token is free, then take it; callers are served one at a time."""
        async with self._lock:
            for _attempt in range(1_000_000):
                wait = self.try_take()
                if wait <= 0:
                    return
                await asyncio.sleep(wait)
