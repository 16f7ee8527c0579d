"""The one place that talks to Stripe, through stripe-python's StripeClient: webhook endpoints, and
the Events API that recovery lists missed events from.

Every call passes the process-wide token bucket; 429, 5xx and network errors are retried with
exponential backoff and full jitter (stripe-python itself is told not to retry, because it does
not retry a plain 429); `Stripe-Should-Retry` overrides the status when Stripe sends it. Errors
leave as the operator's own exceptions (exceptions.py), raised `from` Stripe's.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import stripe

from stripe_webhook_operator import metrics
from stripe_webhook_operator.exceptions import (
    EndpointLimitReached,
    StripeAuthenticationFailed,
    StripeError,
    StripeIdempotencyMismatch,
    StripeNotFound,
    StripeRejected,
    StripeUnavailable,
)
from stripe_webhook_operator.limiter import TokenBucket
from stripe_webhook_operator.manifests import StripeEndpoint
from stripe_webhook_operator.secret_value import SecretValue

logger = logging.getLogger(__name__)

T = TypeVar("T")

BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
PAGE_SIZE = 100


def _header(headers: Mapping[str, str] | None, name: str) -> str | None:
    for key, value in (headers or {}).items():
        if key.lower() == name.lower():
            return value
    return None


def should_retry(status: int | None, should_retry_header: str | None) -> bool:
    """Return whether a failed call is worth repeating: network errors, 409 (another request
    with the same Idempotency-Key still runs), 429 and 5xx, unless Stripe says otherwise in
    `Stripe-Should-Retry`."""
    if should_retry_header is not None:
        return should_retry_header.strip().lower() == "true"
    return status is None or status in (409, 429) or status >= 500


def call_outcome(status: int | None) -> str:
    """Return the `outcome` label of a failed call: `429` on its own (Stripe's rate limit, which
    an alert watches), else the status class (`4xx`, `5xx`), or `network` without an answer."""
    if status is None:
        return "network"
    return "429" if status == 429 else f"{status // 100}xx"


def backoff_delay(attempt: int, retry_after: str | None, rng: random.Random) -> float:
    """Return the pause before retry number `attempt` (0-based): full jitter on an exponential
    ceiling, never shorter than a `Retry-After` the server asked for."""
    ceiling = min(BACKOFF_CAP, BACKOFF_BASE * (2**attempt))
    delay = rng.uniform(ceiling / 2, ceiling)
    if retry_after is not None:
        with contextlib.suppress(ValueError):
            delay = max(delay, min(float(retry_after), BACKOFF_CAP * 4))
    return delay


def _is_endpoint_limit(message: str, code: str | None) -> bool:
    text = message.lower()
    return code == "webhook_endpoint_limit_reached" or (
        "maximum" in text and "webhook endpoint" in text
    )


def translate(exc: stripe.StripeError) -> StripeError:
    """Return the operator's exception for a stripe-python error (no secret in the message)."""
    status = exc.http_status
    code = exc.code
    message = exc.user_message or exc.__class__.__name__
    if isinstance(exc, stripe.APIConnectionError) or status is None:
        return StripeUnavailable(f"Stripe could not be reached: {message}", status=None)
    # 409 `idempotency_key_in_use`: the first request with this key still runs (the operator
    # restarted mid-call). It must be repeated with the same key, never answered with a new
    # secret version, or a second new endpoint would be left behind.
    if status in (409, 429) or status >= 500 or code == "idempotency_key_in_use":
        return StripeUnavailable(f"Stripe answered {status}: {message}", status=status, code=code)
    if status in (401, 403):
        return StripeAuthenticationFailed(
            f"Stripe refused the API key ({status}): {message}", status=status, code=code
        )
    if status == 404:
        return StripeNotFound(message, status=status, code=code)
    if isinstance(exc, stripe.IdempotencyError):
        return StripeIdempotencyMismatch(message, status=status, code=code)
    if _is_endpoint_limit(message, code):
        return EndpointLimitReached(message, status=status, code=code)
    return StripeRejected(message, status=status, code=code)


def _plain(obj: Any) -> dict[str, Any]:
    """Return a stripe-python object as a plain dict (they refuse dict methods)."""
    if hasattr(obj, "to_dict"):
        result: dict[str, Any] = obj.to_dict()
        return result
    return dict(obj)


def _raw_items(page: Any) -> list[dict[str, Any]]:
    """Return a list page's items as Stripe sent them (JSON values, not stripe-python's
    objects, which turn decimal strings into Decimals)."""
    response = getattr(page, "last_response", None)
    data = getattr(response, "data", None)
    if isinstance(data, dict) and isinstance(data.get("data"), list):
        return [dict(item) for item in data["data"]]
    return [item.to_dict(for_json=True) for item in page.data or []]


def to_endpoint(raw: Any) -> StripeEndpoint:
    """Return the operator's view of a stripe-python WebhookEndpoint (its secret is dropped)."""
    obj = _plain(raw)
    metadata = obj.get("metadata") or {}
    return StripeEndpoint(
        id=obj["id"],
        url=obj.get("url") or "",
        status=obj.get("status") or "enabled",
        enabled_events=tuple(obj.get("enabled_events") or ()),
        description=obj.get("description") or None,
        metadata={str(k): str(v) for k, v in dict(metadata).items()},
        api_version=obj.get("api_version"),
        livemode=bool(obj.get("livemode", False)),
    )


class StripeGateway:
    """Webhook-endpoint calls for any number of accounts (one API key each)."""

    def __init__(
        self,
        api_base: str,
        limiter: TokenBucket,
        *,
        max_retries: int = 5,
        timeout: float = 30.0,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._api_base = api_base
        self._limiter = limiter
        self._max_retries = max_retries
        self._timeout = timeout
        self._rng = rng or random.Random()
        self._sleep = sleep
        self._clients: dict[str, stripe.StripeClient] = {}
        # One HTTP client (connection pool, TLS context) serves every account: each of
        # stripe-python's loads the CA bundle into a TLS context of its own, about a MiB of
        # memory per account.
        self._http_client: stripe.HTTPXClient | None = None

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        if self._http_client is not None:
            await self._http_client.close_async()  # type: ignore[no-untyped-call]
        self._http_client = None
        self._clients.clear()

    def _client(self, api_key: SecretValue) -> stripe.StripeClient:
        # Keyed by a digest so the key itself is not kept as a dict key in memory dumps.
        digest = hashlib.sha256(api_key.reveal().encode()).hexdigest()
        client = self._clients.get(digest)
        if client is None:
            if self._http_client is None:
                self._http_client = stripe.HTTPXClient(timeout=self._timeout)
            client = stripe.StripeClient(
                api_key.reveal(),
                base_addresses={"api": self._api_base},
                max_network_retries=0,
                http_client=self._http_client,
            )
            self._clients[digest] = client
        return client

    async def _call(self, method: str, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            await self._limiter.acquire()
            try:
                result = await call()
            except stripe.StripeError as exc:
                status = exc.http_status
                outcome = call_outcome(status)
                metrics.STRIPE_CALLS.labels(method=method, outcome=outcome).inc()
                retry = should_retry(status, _header(exc.headers, "Stripe-Should-Retry"))
                if retry and attempt < self._max_retries:
                    delay = backoff_delay(attempt, _header(exc.headers, "Retry-After"), self._rng)
                    logger.info(
                        "Stripe %s failed with %s; retry %d in %.2f s",
                        method,
                        status or "a network error",
                        attempt + 1,
                        delay,
                    )
                    attempt += 1
                    await self._sleep(delay)
                    continue
                error = translate(exc)
                if retry:
                    error = StripeUnavailable(error.message, status=status, code=exc.code)
                raise error from exc
            metrics.STRIPE_CALLS.labels(method=method, outcome="ok").inc()
            return result

    async def create_endpoint(
        self, api_key: SecretValue, params: Mapping[str, Any], idempotency_key: str
    ) -> tuple[StripeEndpoint, SecretValue]:
        """Create an endpoint (or replay the create of `idempotency_key`); return it and its
        signing secret, which Stripe shows only in this answer."""
        service = self._client(api_key).v1.webhook_endpoints
        obj = await self._call(
            "create",
            lambda: service.create_async(
                dict(params),  # type: ignore[arg-type]
                {"idempotency_key": idempotency_key},
            ),
        )
        secret = _plain(obj).get("secret")
        if not secret:
            raise StripeRejected(
                "Stripe's answer to the endpoint create carried no signing secret.", status=200
            )
        return to_endpoint(obj), SecretValue(str(secret))

    async def retrieve_endpoint(self, api_key: SecretValue, endpoint_id: str) -> StripeEndpoint:
        """Return one endpoint; StripeNotFound if it does not exist."""
        service = self._client(api_key).v1.webhook_endpoints
        obj = await self._call("retrieve", lambda: service.retrieve_async(endpoint_id))
        return to_endpoint(obj)

    async def update_endpoint(
        self, api_key: SecretValue, endpoint_id: str, params: Mapping[str, Any]
    ) -> StripeEndpoint:
        """Update fields of one endpoint in place."""
        service = self._client(api_key).v1.webhook_endpoints
        obj = await self._call(
            "update",
            lambda: service.update_async(endpoint_id, dict(params)),  # type: ignore[arg-type]
        )
        return to_endpoint(obj)

    async def delete_endpoint(self, api_key: SecretValue, endpoint_id: str) -> bool:
        """Delete one endpoint; return False if it was already gone (404 counts as success)."""
        service = self._client(api_key).v1.webhook_endpoints
        try:
            await self._call("delete", lambda: service.delete_async(endpoint_id))
        except StripeNotFound:
            return False
        return True

    async def list_endpoints(self, api_key: SecretValue) -> list[StripeEndpoint]:
        """Return every endpoint of the account (all pages)."""
        service = self._client(api_key).v1.webhook_endpoints
        endpoints: list[StripeEndpoint] = []
        starting_after: str | None = None
        for _page in range(1000):
            params: dict[str, Any] = {"limit": PAGE_SIZE}
            if starting_after:
                params["starting_after"] = starting_after
            page: Any = await self._call(
                "list",
                lambda params=params: service.list_async(params),  # type: ignore[misc]
            )
            items = list(page.data or [])
            endpoints.extend(to_endpoint(item) for item in items)
            if not page.has_more or not items:
                break
            starting_after = items[-1]["id"]
        return endpoints

    async def list_events(
        self,
        api_key: SecretValue,
        types: Sequence[str],
        created_gte: int,
        created_lte: int,
        *,
        delivery_success: bool | None = None,
    ) -> list[dict[str, Any]]:
        """Return the account's events of `types` created in [`created_gte`, `created_lte`]
        (Unix seconds), every page, oldest first; with `delivery_success`, only those
        (`False`: some webhook has not, or not yet, been delivered to)."""
        service = self._client(api_key).v1.events
        events: list[dict[str, Any]] = []
        starting_after: str | None = None
        for _page in range(10_000):
            params: dict[str, Any] = {
                "types": sorted(types),
                "created": {"gte": created_gte, "lte": created_lte},
                "limit": PAGE_SIZE,
            }
            if delivery_success is not None:
                params["delivery_success"] = delivery_success
            if starting_after:
                params["starting_after"] = starting_after
            page: Any = await self._call(
                "list_events",
                lambda params=params: service.list_async(params),  # type: ignore[misc]
            )
            items = _raw_items(page)
            events.extend(items)
            if not page.has_more or not items:
                break
            starting_after = str(items[-1]["id"])
        # Stripe lists newest first; within a second, its order of creation is the listing's.
        events.reverse()
        return sorted(events, key=lambda event: int(event.get("created") or 0))
