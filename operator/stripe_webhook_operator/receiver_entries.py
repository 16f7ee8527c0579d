"""What the receiver's aggregated Secret holds, remembered between passes.

That Secret carries one key per webhook, so it grows with their number: reading all of it on
every pass of every webhook costs the API server (and the operator) N x N. One read serves
every webhook for `ttl` seconds instead, and the operator's own writes update the copy; only
digests of the values are kept, never the secrets they carry.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable

from stripe_webhook_operator.kube import Kube


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


class ReceiverEntries:
    """The keys of one Secret (namespace/name), read at most once per `ttl` seconds."""

    def __init__(
        self,
        kube: Kube,
        namespace: str,
        name: str,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._name = name
        self._ttl = ttl
        self._clock = clock
        self._digests: dict[str, str] = {}
        self._read_at: float | None = None
        self._lock = asyncio.Lock()
        self.reads = 0

    async def _refresh(self) -> None:
        async with self._lock:
            if self._read_at is not None and self._clock() - self._read_at < self._ttl:
                return
            started = self._clock()
            secret = await self._kube.get_secret(self._namespace, self._name)
            data = (secret or {}).get("data") or {}
            self._digests = {key: _digest(str(value)) for key, value in data.items()}
            self._read_at = started
            self.reads += 1

    async def put(self, key: str, value: str | None) -> None:
        """Make key `key` hold `value` (base64; None removes it), writing only if it differs
        from what the Secret held when last read or written. A removal is always written: a
        deleted webhook's secret must not stay because the copy was old."""
        wanted = None if value is None else _digest(value)
        if wanted is not None:
            await self._refresh()
            if self._digests.get(key) == wanted:
                return
        await self._kube.put_receiver_entry(self._namespace, self._name, key, value)
        if wanted is None:
            self._digests.pop(key, None)
        else:
            self._digests[key] = wanted
