"""The `stripe_emulator` fixture: the Stripe emulator for the session, or Stripe test mode.

With STRIPE_TEST_API_KEY set, `base_url` is Stripe's and `new_api_key()` returns that key;
the helpers that only the emulator can serve (`/_emulator/` controls) then raise
`EmulatorOnly`, so a test that needs them fails loudly instead of passing as a skip.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import string
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import stripe

from devstack.stripe_emulator.launcher import EmulatorProcess

STRIPE_API = "https://api.stripe.com"
_ALPHABET = string.ascii_letters + string.digits


class EmulatorOnly(RuntimeError):
    """Raised by a control helper when the suite runs against Stripe test mode."""


class StripeTarget:
    """Where the suite's Stripe calls go, with helpers for the emulator's `/_emulator/` API."""

    def __init__(self, base_url: str, *, test_key: str | None = None) -> None:
        self.base_url = base_url
        self._test_key = test_key
        self._accounts: dict[str, str] = {}

    @property
    def emulated(self) -> bool:
        return self._test_key is None

    def new_api_key(self) -> str:
        """A fresh `sk_test_...` key, which is a fresh empty account on the emulator."""
        if self._test_key is not None:
            return self._test_key
        return "sk_test_emu" + "".join(secrets.choice(_ALPHABET) for _ in range(32))

    def client(self, api_key: str, **options: Any) -> stripe.StripeClient:
        """A stripe-python client for `api_key` pointed at this target."""
        return stripe.StripeClient(api_key, base_addresses={"api": self.base_url}, **options)

    def account_id(self, api_key: str) -> str:
        """The `acct_...` id behind `api_key` (from Stripe's `GET /v1/account`)."""
        if api_key not in self._accounts:
            self._accounts[api_key] = str(self.client(api_key).v1.accounts.retrieve_current().id)
        return self._accounts[api_key]

    def create_subscription(
        self,
        api_key: str,
        *,
        interval: str = "month",
        trial_end: int | None = None,
        metadata: dict[str, str] | None = None,
        product_name: str = "Premium",
    ) -> stripe.Subscription:
        """Create a product, a recurring price, a customer and a subscription to that price."""
        client = self.client(api_key)
        product = client.v1.products.create(params={"name": product_name})
        price = client.v1.prices.create(
            params={
                "product": product.id,
                "currency": "usd",
                "unit_amount": 999,
                "recurring": {"interval": interval},
            }
        )
        # A test card as default payment method, so Stripe test mode accepts the subscription.
        customer = client.v1.customers.create(
            params={
                "email": "subscriber@example.test",
                "payment_method": "pm_card_visa",
                "invoice_settings": {"default_payment_method": "pm_card_visa"},
            }
        )
        params: dict[str, Any] = {"customer": customer.id, "items": [{"price": price.id}]}
        if trial_end is not None:
            params["trial_end"] = trial_end
        if metadata:
            params["metadata"] = metadata
        return client.v1.subscriptions.create(params=params)  # type: ignore[arg-type]

    # --- emulator-only controls -------------------------------------------------------

    def _emulator_account(self, api_key: str) -> str:
        """The account id, for a control path; refused first when the target is Stripe."""
        self._require_emulator("/_emulator/accounts")
        return self.account_id(api_key)

    def _require_emulator(self, path: str) -> None:
        if not self.emulated:
            raise EmulatorOnly(
                f"`{path}` exists only on the Stripe emulator; unset STRIPE_TEST_API_KEY to "
                "run this test against it."
            )

    def _control(self, method: str, path: str, **kwargs: Any) -> Any:
        self._require_emulator(path)
        response = httpx.request(method, self.base_url + path, timeout=10, **kwargs)
        if response.status_code >= 400:
            raise RuntimeError(f"{method} {path} answered {response.status_code}: {response.text}")
        return response.json()

    def inject_fault(
        self,
        api_key: str | None,
        *,
        status: int | None = None,
        should_retry: bool | None = None,
        path_prefix: str = "/v1/",
        method: str | None = None,
        count: int | None = 1,
        latency: float = 0.0,
        answer_latency: float = 0.0,
        work_latency: float = 0.0,
        drop: str | None = None,
    ) -> str:
        """Make the next `count` matching requests of `api_key`'s account (of every account
        when None) fail: `status` 429/500/502/503/504, `drop` 'before'/'after' the request
        runs, `latency` before it runs, `answer_latency` after it ran (before its answer),
        `work_latency` while it runs (its Idempotency-Key is in use meanwhile: a request
        with the same key gets Stripe's 409 `idempotency_key_in_use`)."""
        spec: dict[str, Any] = {
            "path_prefix": path_prefix,
            "method": method,
            "status": status,
            "should_retry": should_retry,
            "count": count,
            "latency": latency,
            "answer_latency": answer_latency,
            "work_latency": work_latency,
            "drop": drop,
        }
        if api_key is not None:
            spec["account"] = self._emulator_account(api_key)
        return str(self._control("POST", "/_emulator/faults", json=spec)["id"])

    def clear_faults(self, api_key: str | None = None) -> None:
        params = {} if api_key is None else {"account": self._emulator_account(api_key)}
        self._control("DELETE", "/_emulator/faults", params=params)

    def deliveries(
        self, api_key: str, *, endpoint: str | None = None, event: str | None = None
    ) -> list[dict[str, Any]]:
        """Every delivery attempt to the account's endpoints, oldest first: `endpoint`,
        `event`, `event_type`, `attempt`, `status` (None: no HTTP answer), `error`, `time`."""
        return list(self._deliveries(api_key, endpoint=endpoint, event=event)["data"])

    def _deliveries(self, api_key: str, **filters: str | None) -> dict[str, Any]:
        params = {name: value for name, value in filters.items() if value}
        path = f"/_emulator/accounts/{self._emulator_account(api_key)}/deliveries"
        return dict(self._control("GET", path, params=params))

    def wait_for_deliveries(
        self,
        api_key: str,
        until: Callable[[list[dict[str, Any]]], bool],
        *,
        endpoint: str | None = None,
        timeout: float = 20.0,
    ) -> list[dict[str, Any]]:
        """Poll the delivery attempts until `until(attempts)` holds; raise after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            attempts = self.deliveries(api_key, endpoint=endpoint)
            if until(attempts):
                return attempts
            if time.monotonic() > deadline:
                raise TimeoutError(f"delivery attempts never met the condition: {attempts}")
            time.sleep(0.05)

    def wait_until_settled(self, api_key: str, *, timeout: float = 20.0) -> list[dict[str, Any]]:
        """Wait until no delivery of the account is in progress (delivered, given up, or
        stopped because its endpoint was disabled or deleted); return every attempt."""
        deadline = time.monotonic() + timeout
        while True:
            answer = self._deliveries(api_key)
            if answer["in_progress"] == 0:
                return list(answer["data"])
            if time.monotonic() > deadline:
                raise TimeoutError(f"{answer['in_progress']} deliveries still in progress")
            time.sleep(0.05)

    def clock(self, api_key: str) -> dict[str, Any]:
        """The account's clock: `now` (Unix seconds) and whether it is `frozen`."""
        return dict(self._control("GET", self._clock_path(api_key)))

    def set_clock(self, api_key: str, moment: int) -> int:
        """Stop the account's clock at `moment`: what its requests stamp and what the 30-day
        retention of its events is measured against. Returns the clock's time."""
        return int(self._control("POST", self._clock_path(api_key), json={"now": moment})["now"])

    def advance_clock(self, api_key: str, seconds: int) -> int:
        """Move the account's clock `seconds` on (it then stands still); returns its time."""
        path = self._clock_path(api_key)
        return int(self._control("POST", path, json={"advance": seconds})["now"])

    def resume_clock(self, api_key: str) -> None:
        """Run the account's clock with the wall clock again."""
        self._control("POST", self._clock_path(api_key), json={"resume": True})

    def set_rate_limit(self, api_key: str, rate: float | None) -> None:
        """Limit the account to `rate` requests per second from now on (None: no limit)."""
        path = f"/_emulator/accounts/{self._emulator_account(api_key)}/rate_limit"
        self._control("POST", path, json={"rate": rate})

    def _clock_path(self, api_key: str) -> str:
        return f"/_emulator/accounts/{self._emulator_account(api_key)}/clock"

    def event_log(self, api_key: str) -> list[dict[str, Any]]:
        """Every event the account ever created, beyond the retention too, oldest first:
        `id`, `type`, `created`, `object` (the id of its object), `retained` (still served by
        the Events API) and `deliveries` (endpoint id -> 'pending', 'succeeded' or 'failed')."""
        path = f"/_emulator/accounts/{self._emulator_account(api_key)}/events"
        return list(self._control("GET", path)["data"])

    def all_stats(self) -> list[dict[str, Any]]:
        """The counters of every account the emulator has seen."""
        return list(self._control("GET", "/_emulator/stats")["accounts"])

    def stats(self, api_key: str) -> dict[str, Any]:
        """API calls of the account by `METHOD /template`, plus `rate_limited`,
        `faults_served` and `idempotency_key_in_use` (409s for a key still in use)."""
        path = f"/_emulator/accounts/{self._emulator_account(api_key)}/stats"
        return dict(self._control("GET", path))

    def reset_stats(self, api_key: str) -> None:
        path = f"/_emulator/accounts/{self._emulator_account(api_key)}/stats/reset"
        self._control("POST", path)

    def disable_endpoint(self, endpoint_id: str) -> None:
        """Disable an endpoint as Stripe does after its deliveries keep failing."""
        self._control("POST", f"/_emulator/webhook_endpoints/{endpoint_id}/disable")

    def delete_endpoint_in_dashboard(self, endpoint_id: str) -> None:
        """Delete an endpoint behind the API client's back, as a dashboard user would."""
        self._control("DELETE", f"/_emulator/webhook_endpoints/{endpoint_id}")

    def roll_secret(self, endpoint_id: str, *, expires_in: float) -> str:
        """Roll an endpoint's secret as the dashboard does; the old one signs for
        `expires_in` more seconds. Returns the new secret."""
        path = f"/_emulator/webhook_endpoints/{endpoint_id}/roll_secret"
        return str(self._control("POST", path, json={"expires_in": expires_in})["secret"])


@contextlib.contextmanager
def own_emulator(workdir: Path, **options: Any) -> Iterator[StripeTarget]:
    """An emulator process started with `options` (those of `EmulatorProcess`: a retry
    schedule, a rate limit...) for the caller alone, stopped by its PID afterwards."""
    process = EmulatorProcess(workdir, **options).start()
    try:
        yield StripeTarget(process.base_url)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def stripe_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeTarget]:
    """The Stripe emulator for the session (or Stripe test mode with STRIPE_TEST_API_KEY)."""
    test_key = os.environ.get("STRIPE_TEST_API_KEY")
    if test_key:
        yield StripeTarget(STRIPE_API, test_key=test_key)
        return
    with own_emulator(Path(tmp_path_factory.mktemp("stripe-emulator"))) as target:
        yield target
