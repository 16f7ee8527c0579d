"""The receiver's aggregated Secret, as the operator writes it: remembered between passes,
written in batches.

That Secret carries one key per webhook, so it grows with their number. Reading all of it on
every pass of every webhook cost the API server (and the operator) N x N: one read serves
every webhook for `ttl` seconds instead, and the operator's own writes update the copy (only
digests of the values are kept, never the secrets they carry). Writing it once per webhook
was N x N again, and every write of that one object raced the others: the entries asked for
while a write is in flight go together in the next one. When the Secret is deleted by hand,
`forget()` drops the copy, so the next pass of each webhook reads it afresh and writes its entry
back at once, not an interval later (handlers.py sees the deletion).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable

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
        on_written: Callable[[str], Awaitable[object]] | None = None,
    ) -> None:
        self._kube = kube
        self._namespace = namespace
        self._name = name
        self._ttl = ttl
        self._clock = clock
        # Told the Secret's new resourceVersion after each write (receiver_pods.nudge).
        self._on_written = on_written
        self._digests: dict[str, str] = {}
        self._read_at: float | None = None
        self._read_lock = asyncio.Lock()
        # Entries waiting for the next write, and who waits for it.
        self._pending: dict[str, str | None] = {}
        self._waiters: list[asyncio.Future[None]] = []
        self._writer: asyncio.Task[None] | None = None
        self.reads = 0
        self.writes = 0

    async def _refresh(self) -> None:
        async with self._read_lock:
            if self._read_at is not None and self._clock() - self._read_at < self._ttl:
                return
            started = self._clock()
            secret = await self._kube.get_secret(self._namespace, self._name)
            data = (secret or {}).get("data") or {}
            self._digests = {key: _digest(str(value)) for key, value in data.items()}
            self._read_at = started
            self.reads += 1

    def forget(self) -> None:
        """Drop the remembered copy: the next `put` reads the Secret again (it was deleted or
        changed by someone else, and holds less than the copy says)."""
        self._digests = {}
        self._read_at = None

    async def put(self, key: str, value: str | None) -> None:
        """Make key `key` hold `value` (base64; None removes it), writing only if it differs
        from what the Secret held when last read or written; return once it is written.

        A removal is always written: a deleted webhook's secret must not stay because the
        copy was old."""
        if value is not None:
            await self._refresh()
            if self._digests.get(key) == _digest(value):
                return
        done = asyncio.get_running_loop().create_future()
        self._pending[key] = value
        self._waiters.append(done)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())
        await done

    async def _write_all(self) -> None:
        """Write what is pending, batch after batch, until nothing is."""
        for _batch in range(1_000_000):
            if not self._pending:
                return
            entries, waiters = self._pending, self._waiters
            self._pending, self._waiters = {}, []
            try:
                version = await self._kube.put_receiver_entries(
                    self._namespace, self._name, entries
                )
            except asyncio.CancelledError:
                for waiter in [*waiters, *self._waiters]:
                    waiter.cancel()
                raise
            except Exception as exc:  # every waiter gets the failure as its own
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(exc)
                continue
            self.writes += 1
            for key, value in entries.items():
                if value is None:
                    self._digests.pop(key, None)
                else:
                    self._digests[key] = _digest(value)
            if self._on_written is not None and version is not None:
                # Before the waiters go on to the handshake: their kubelet is already told.
                await self._on_written(version)
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)
