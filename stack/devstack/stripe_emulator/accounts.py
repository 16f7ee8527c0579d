"""The emulator's state: one account per API key, holding every object that key created.

Everything lives in memory of the single emulator process and is touched only from its event
loop, so no locks are needed: a handler runs from start to end without yielding.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from devstack.stripe_emulator.clock import Clock
from devstack.stripe_emulator.errors import StripeError
from devstack.stripe_emulator.limiter import TokenBucket

_KEY_FORM = re.compile(r"^sk_test_[A-Za-z0-9_]{1,247}$")
_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """Return a fresh Stripe-style identifier such as `we_1Q...`."""
    return prefix + "_" + "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass
class SigningSecret:
    """One signing secret of an endpoint; `expires_at` is set once it has been rolled."""

    value: str = field(repr=False)
    expires_at: float | None = None

    def live(self, at: float) -> bool:
        return self.expires_at is None or at < self.expires_at


@dataclass
class Endpoint:
    """A webhook endpoint; the secrets stay out of every rendering except the create answer."""

    id: str
    url: str
    enabled_events: list[str]
    api_version: str | None
    application: str | None
    description: str | None
    metadata: dict[str, str]
    created: int
    status: str = "enabled"
    secrets: list[SigningSecret] = field(default_factory=list, repr=False)

    def render(self) -> dict[str, Any]:
        """The endpoint as retrieve and list show it: never with its secret."""
        return {
            "id": self.id,
            "object": "webhook_endpoint",
            "api_version": self.api_version,
            "application": self.application,
            "created": self.created,
            "description": self.description,
            "enabled_events": list(self.enabled_events),
            "livemode": False,
            "metadata": dict(self.metadata),
            "status": self.status,
            "url": self.url,
        }

    def live_secrets(self, at: float) -> list[str]:
        return [secret.value for secret in self.secrets if secret.live(at)]

    def wants(self, event_type: str) -> bool:
        return self.status == "enabled" and (
            "*" in self.enabled_events or event_type in self.enabled_events
        )


PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"


@dataclass
class Event:
    """An event; `before` and `after` are internal snapshots, rendered per API version.

    `deliveries` holds, per endpoint the event was sent to (those enabled and wanting it when
    it was created), `pending` until an attempt got a 2xx (`succeeded`) or the attempts ended
    without one (`failed`: retries used up, or the endpoint disabled or deleted meanwhile).
    `sequence` orders events of one account created in the same second."""

    id: str
    type: str
    created: int
    after: dict[str, Any]
    before: dict[str, Any] | None
    request_id: str | None
    idempotency_key: str | None
    sequence: int = 0
    deliveries: dict[str, str] = field(default_factory=dict)

    @property
    def pending_webhooks(self) -> int:
        """Stripe's count of webhooks not (yet) successfully delivered to."""
        return sum(1 for state in self.deliveries.values() if state != SUCCEEDED)

    @property
    def delivered(self) -> bool:
        """Whether every webhook it was sent to answered 2xx: `delivery_success=true`."""
        return self.pending_webhooks == 0

    @property
    def order(self) -> tuple[int, int]:
        """Newer events have greater keys; Stripe lists them newest first."""
        return (self.created, self.sequence)


@dataclass
class SavedResponse:
    """The first answer given to an Idempotency-Key, replayed for later uses of that key."""

    fingerprint: str
    status: int
    body: dict[str, Any] = field(repr=False)
    request_id: str


@dataclass
class Account:
    """Everything one API key sees, plus the emulator's counters for it."""

    id: str
    default_api_version: str
    limiter: TokenBucket | None
    clock: Clock = field(default_factory=Clock)
    endpoints: dict[str, Endpoint] = field(default_factory=dict)
    products: dict[str, dict[str, Any]] = field(default_factory=dict)
    prices: dict[str, dict[str, Any]] = field(default_factory=dict)
    customers: dict[str, dict[str, Any]] = field(default_factory=dict)
    subscriptions: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[str, Event] = field(default_factory=dict)
    idempotency: dict[str, SavedResponse] = field(default_factory=dict, repr=False)
    # Idempotency-Keys of requests still running: no answer is saved for them yet.
    keys_in_use: set[str] = field(default_factory=set, repr=False)
    calls: Counter[str] = field(default_factory=Counter)
    rate_limited: int = 0
    faults_served: int = 0
    keys_in_use_refused: int = 0
    attempts: list[dict[str, Any]] = field(default_factory=list)
    deliveries_in_progress: int = 0

    def stats(self) -> dict[str, Any]:
        """Counters for benchmarks: API calls by `METHOD /path` template, throttled, faulted."""
        return {
            "account": self.id,
            "calls": dict(sorted(self.calls.items())),
            "total": sum(self.calls.values()),
            "rate_limited": self.rate_limited,
            "faults_served": self.faults_served,
            "idempotency_key_in_use": self.keys_in_use_refused,
        }


class Registry:
    """All accounts, found by API key (held only as a SHA-256 digest) or by account id."""

    def __init__(self, *, default_api_version: str, rate_limit: float | None) -> None:
        self.default_api_version = default_api_version
        self.rate_limit = rate_limit
        self._by_digest: dict[str, Account] = {}
        self._by_id: dict[str, Account] = {}

    def open(self, api_key: str) -> Account:
        """Return the account of `api_key`, creating it on first use; refuse malformed keys."""
        if not _KEY_FORM.match(api_key):
            raise StripeError(
                401,
                "invalid_request_error",
                "Invalid API Key provided; a test-mode secret key starts with `sk_test_`.",
            )
        digest = hashlib.sha256(api_key.encode()).hexdigest()
        account = self._by_digest.get(digest)
        if account is None:
            limiter = None if self.rate_limit is None else TokenBucket(self.rate_limit)
            account = Account(new_id("acct", 16), self.default_api_version, limiter)
            self._by_digest[digest] = account
            self._by_id[account.id] = account
        return account

    def get(self, account_id: str) -> Account | None:
        return self._by_id.get(account_id)

    def all(self) -> list[Account]:
        return list(self._by_id.values())

    def find_endpoint(self, endpoint_id: str) -> tuple[Account, Endpoint] | None:
        """Find an endpoint by id in whichever account holds it (for the dashboard actions)."""
        for account in self._by_id.values():
            endpoint = account.endpoints.get(endpoint_id)
            if endpoint is not None:
                return account, endpoint
        return None
