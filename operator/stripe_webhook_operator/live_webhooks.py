"""The uids of the StripeWebhooks that exist, for the orphan sweep, listed once for every
account whose sweep asks at the same time.

After a restart every account's endpoint list expires together, and each account's sweep
needs to know which StripeWebhooks exist: one list of every webhook per account would be a
hundred lists of a thousand bodies at N = 1,000. A sweep may use a list only if it began
after the sweep asked (so after its account's endpoints were listed: an endpoint in that
list belongs to a webhook that existed before, so a later list has it unless it is gone);
sweeps that ask while a list runs share the next one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

Lister = Callable[[], Awaitable[list[dict[str, Any]]]]


class LiveWebhooks:
    """The uids of every StripeWebhook the operator serves, as a list begun after the caller
    asked found them."""

    def __init__(self, lister: Lister, clock: Callable[[], float] = time.monotonic) -> None:
        self._lister = lister
        self._clock = clock
        self._lock = asyncio.Lock()
        self._started: float | None = None
        self._uids: frozenset[str] = frozenset()
        self.lists = 0

    async def uids(self) -> frozenset[str]:
        """Return the uids of the webhooks that exist, listed by a call begun after this one."""
        asked = self._clock()
        async with self._lock:
            if self._started is not None and self._started >= asked:
                return self._uids
            started = self._clock()
            items = await self._lister()
            self.lists += 1
            self._uids = frozenset(str(item["metadata"]["uid"]) for item in items)
            self._started = started
            return self._uids
