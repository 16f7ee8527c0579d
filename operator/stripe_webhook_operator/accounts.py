"""A per-account cache of Stripe's endpoint list, so one list call serves every webhook of an
account instead of one call per webhook: in a drift pass, and when new webhooks look for
endpoints of theirs left by a crash."""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from stripe_webhook_operator.manifests import StripeEndpoint
from stripe_webhook_operator.secret_value import SecretValue

Lister = Callable[[SecretValue], Awaitable[list[StripeEndpoint]]]
OnRefresh = Callable[[SecretValue, list[StripeEndpoint]], Awaitable[None]]


@dataclass
class _Entry:
    started: float
    endpoints: list[StripeEndpoint]


class AccountCache:
    """Endpoint lists by account, each fetched at most once per `ttl` seconds.

    Callers of one account that arrive together wait for the same fetch. `on_refresh` runs
    after each fetch made because the cached list had expired (the orphan sweep uses it: one
    list serves both)."""

    def __init__(
        self,
        lister: Lister,
        ttl: float,
        on_refresh: OnRefresh | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lister = lister
        self._ttl = ttl
        self._on_refresh = on_refresh
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self.fetches = 0

    @staticmethod
    def account_key(api_key: SecretValue) -> str:
        """Return the digest an account is cached under (never the key itself)."""
        return hashlib.sha256(api_key.reveal().encode()).hexdigest()

    def age(self, api_key: SecretValue) -> float | None:
        """Return the seconds since the account's cached list was fetched, if there is one."""
        entry = self._entries.get(self.account_key(api_key))
        return None if entry is None else self._clock() - entry.started

    async def endpoints(self, api_key: SecretValue) -> list[StripeEndpoint]:
        """Return the account's endpoints, from the cache while it is fresh."""
        endpoints, refreshed = await self._get(api_key, self._clock() - self._ttl)
        if refreshed and self._on_refresh is not None:
            await self._on_refresh(api_key, endpoints)
        return endpoints

    async def current_endpoints(self, api_key: SecretValue) -> list[StripeEndpoint]:
        """Return the account's endpoints as listed by a call that began after this one did.

        Webhooks of one account that ask together share one list call: whoever waited for a
        fetch already running takes the next one, which began after it asked."""
        endpoints, _ = await self._get(api_key, self._clock())
        return endpoints

    async def _get(
        self, api_key: SecretValue, newer_than: float
    ) -> tuple[list[StripeEndpoint], bool]:
        key = self.account_key(api_key)
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            entry = self._entries.get(key)
            if entry is not None and entry.started >= newer_than:
                return entry.endpoints, False
            started = self._clock()
            endpoints = await self._lister(api_key)
            self.fetches += 1
            self._entries[key] = _Entry(started, endpoints)
        return endpoints, True
