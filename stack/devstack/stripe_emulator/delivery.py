"""Webhook delivery: each event to each enabled endpoint that wants it, retried on failure.

As Stripe does:
- an event goes to the endpoints that are enabled and want its type when it is created, and
  to no other: an endpoint disabled then never gets it, not even once re-enabled;
- a delivery that got no 2xx answer (or no answer) is retried on a schedule that ends: in
  test mode Stripe retries three times over a few hours, the emulator by default three times
  within seconds (`--retry-schedule`, shorter still in tests); then the delivery has failed;
- an attempt finds its endpoint disabled or deleted: nothing is sent and retrying stops (the
  delivery failed); disabled and re-enabled before the next attempt, retrying goes on;
- the event records each delivery's state, which `pending_webhooks` and the Events API's
  `delivery_success` filter read.
Deliveries run concurrently and their order is not guaranteed, as with Stripe. Only loopback
hosts are ever contacted, and, inside the node's network namespace, the hosts of one cluster
DNS domain (its Services).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx

from devstack.stripe_emulator import versions
from devstack.stripe_emulator.accounts import FAILED, PENDING, SUCCEEDED, Account, Event
from devstack.stripe_emulator.signing import signature_header

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
# Three retries, as Stripe's test mode makes, in seconds instead of hours.
DEFAULT_RETRY_SCHEDULE = (0.7, 2.0, 6.0)
_HEADERS = {
    "Content-Type": "application/json; charset=utf-8",
    "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
    "Cache-Control": "no-cache",
    "Accept": "*/*; q=0.5, application/xml",
}


def render_event(account: Account, event: Event, version: str) -> dict[str, Any]:
    """The event as Stripe shows it to a reader of API version `version`."""
    data: dict[str, Any] = {"object": versions.render(event.after, version)}
    if event.before is not None:
        data["previous_attributes"] = versions.previous_attributes(
            event.before, event.after, version
        )
    return {
        "id": event.id,
        "object": "event",
        "api_version": version,
        "created": event.created,
        "data": data,
        "livemode": False,
        "pending_webhooks": event.pending_webhooks,
        "request": {"id": event.request_id, "idempotency_key": event.idempotency_key},
        "type": event.type,
    }


class Deliverer:
    """Sends events to endpoints in background tasks and records every attempt."""

    def __init__(
        self,
        *,
        retry_schedule: Sequence[float],
        timeout: float,
        concurrency: int = 64,
        domain: str | None = None,
    ) -> None:
        self.retry_schedule = tuple(retry_schedule)
        self.timeout = timeout
        self.domain = domain
        self._client: httpx.AsyncClient | None = None
        self._slots = asyncio.Semaphore(concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._sequence = 0

    async def start(self) -> None:
        self._client = httpx.AsyncClient(timeout=self.timeout, follow_redirects=False)

    async def aclose(self) -> None:
        """Cancel deliveries still waiting and close the HTTP client."""
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._client is not None:
            await self._client.aclose()

    def dispatch(self, account: Account, event: Event) -> None:
        """Start delivering `event` to every enabled endpoint of `account` that wants it."""
        targets = [ep.id for ep in account.endpoints.values() if ep.wants(event.type)]
        event.deliveries = dict.fromkeys(targets, PENDING)
        account.deliveries_in_progress += len(targets)
        for endpoint_id in targets:
            task = asyncio.get_running_loop().create_task(
                self._deliver(account, endpoint_id, event)
            )
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def pending(self) -> int:
        return len(self._tasks)

    async def _deliver(self, account: Account, endpoint_id: str, event: Event) -> None:
        try:
            await self._attempts(account, endpoint_id, event)
        finally:
            account.deliveries_in_progress -= 1

    async def _attempts(self, account: Account, endpoint_id: str, event: Event) -> None:
        delays = (0.0, *self.retry_schedule)
        for attempt, delay in enumerate(delays, start=1):
            if delay:
                await asyncio.sleep(delay)
            async with self._slots:
                # Looked up once a slot is free, right before sending: an endpoint disabled
                # while this attempt waited gets nothing.
                endpoint = account.endpoints.get(endpoint_id)
                if endpoint is None or endpoint.status != "enabled":
                    break
                version = endpoint.api_version or account.default_api_version
                body = json.dumps(render_event(account, event, version), indent=2).encode()
                status, error = await self._post(endpoint.url, body, endpoint.live_secrets)
            self._record(account, endpoint_id, event, attempt, status, error)
            if status is not None and 200 <= status < 300:
                event.deliveries[endpoint_id] = SUCCEEDED
                return
        event.deliveries[endpoint_id] = FAILED

    def may_contact(self, host: str) -> bool:
        """Whether events may be sent to `host`: a loopback one, or one of `domain`."""
        return host in LOOPBACK_HOSTS or bool(
            self.domain and host.rstrip(".").endswith(f".{self.domain}")
        )

    async def _post(
        self, url: str, body: bytes, live_secrets: Any
    ) -> tuple[int | None, str | None]:
        if not self.may_contact(urlsplit(url).hostname or ""):
            return None, "not sent: the emulator contacts loopback hosts only" + (
                f" and hosts of {self.domain}" if self.domain else ""
            )
        assert self._client is not None, "Deliverer.start() was not awaited"
        stamp = int(time.time())
        headers = {
            **_HEADERS,
            "Stripe-Signature": signature_header(body, live_secrets(stamp), stamp),
        }
        try:
            response = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return None, f"{type(exc).__name__}: {exc}"
        return response.status_code, None

    def _record(
        self,
        account: Account,
        endpoint_id: str,
        event: Event,
        attempt: int,
        status: int | None,
        error: str | None,
    ) -> None:
        self._sequence += 1
        account.attempts.append(
            {
                "sequence": self._sequence,
                "endpoint": endpoint_id,
                "event": event.id,
                "event_type": event.type,
                "attempt": attempt,
                "status": status,
                "error": error,
                "time": time.time(),
            }
        )
