"""The emulator's Starlette app: Stripe's `/v1` API, and its own controls under `/_emulator/`.

Every `/v1` request passes the same gate, in Stripe's order: API key → (injected fault) →
rate limit → Idempotency-Key → the resource handler. Answers carry `Request-Id`; replays of
an Idempotency-Key carry `Idempotent-Replayed: true` and `Original-Request`; a key whose first
request still runs is answered 409 `idempotency_key_in_use` and nothing is saved for it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import copy
import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from devstack.stripe_emulator import versions
from devstack.stripe_emulator.accounts import Account, Registry, SavedResponse, new_id
from devstack.stripe_emulator.calls import Call
from devstack.stripe_emulator.connections import drop
from devstack.stripe_emulator.control import control_routes
from devstack.stripe_emulator.delivery import Deliverer
from devstack.stripe_emulator.errors import StripeError
from devstack.stripe_emulator.faults import FaultBook
from devstack.stripe_emulator.forms import parse_form
from devstack.stripe_emulator.routes import ApiRoute, resolve
from devstack.stripe_emulator.settings import Settings


class Emulator:
    """The state behind one emulator process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry(
            default_api_version=settings.default_api_version, rate_limit=settings.rate_limit
        )
        self.faults = FaultBook()
        self.deliverer = Deliverer(
            retry_schedule=settings.retry_schedule,
            timeout=settings.delivery_timeout,
            domain=settings.delivery_domain,
        )

    async def handle(self, request: Request) -> Response:
        """Serve one `/v1` request."""
        request_id = new_id("req", 14)
        try:
            return await self._gate(request, request_id)
        except StripeError as error:
            return _answer(error.status, error.body(), request_id, error.headers)

    async def _gate(self, request: Request, request_id: str) -> Response:
        account = self.registry.open(_api_key(request))
        method, path = request.method, request.url.path
        found = resolve(method, path)
        account.calls[f"{method} {found[0].template if found else '(unrecognized)'}"] += 1
        fault = self.faults.take(account.id, method, path)
        if fault is not None:
            account.faults_served += 1
            await asyncio.sleep(fault.latency)
            if fault.drop == "before":
                await drop(request.scope)
                return Response(status_code=500)  # goes nowhere: the connection is gone
            error = fault.error()
            if error is not None:
                raise error
        _admit(account)
        if found is None:
            raise StripeError(
                404,
                "invalid_request_error",
                f"Unrecognized request URL ({method}: {path}); check the path and method.",
            )
        work = 0.0 if fault is None else fault.work_latency
        response = await self._execute(request, request_id, account, *found, work)
        if fault is not None:
            await asyncio.sleep(fault.answer_latency)
            if fault.drop == "after":
                await drop(request.scope)
        return response

    async def _execute(
        self,
        request: Request,
        request_id: str,
        account: Account,
        route: ApiRoute,
        ids: dict[str, str],
        work: float,
    ) -> Response:
        method, path = request.method, request.url.path
        params = parse_form(request.url.query)
        if method == "POST":
            params.update(parse_form((await request.body()).decode("utf-8", "replace")))
        version = request.headers.get("stripe-version") or account.default_api_version
        versions.check_api_version(version, param="Stripe-Version")
        key = request.headers.get("idempotency-key") if method == "POST" else None
        replayed = self._replay(account, key, method, path, params)
        if replayed is not None:
            return replayed
        # From the replay check to marking the key in use nothing awaits, so two requests with
        # one key never both run the handler: the later one is refused while the first runs.
        if key is not None and key in account.keys_in_use:
            account.keys_in_use_refused += 1
            raise StripeError(
                409,
                "idempotency_error",
                f"Another request with the Idempotency-Key '{key}' is still being processed; "
                "retry this one later with the same key.",
                code="idempotency_key_in_use",
            )
        if key is not None:
            account.keys_in_use.add(key)
        try:
            if work:  # the request's own work takes this long (an injected fault)
                await asyncio.sleep(work)
            call = Call(
                account,
                params,
                ids,
                version,
                request_id,
                key,
                self.deliverer.dispatch,
                account.clock.now(),
            )
            status, body = route.handler(call)
            if key is not None:
                account.idempotency[key] = SavedResponse(
                    _fingerprint(method, path, params), status, copy.deepcopy(body), request_id
                )
        finally:
            if key is not None:
                account.keys_in_use.discard(key)
        return _answer(status, body, request_id, {"Stripe-Version": version})

    def _replay(
        self, account: Account, key: str | None, method: str, path: str, params: dict[str, Any]
    ) -> Response | None:
        if key is None:
            return None
        if len(key) > 255:
            raise StripeError.invalid(
                "The `Idempotency-Key` header must be at most 255 characters.",
                param="Idempotency-Key",
            )
        saved = account.idempotency.get(key)
        if saved is None:
            return None
        if saved.fingerprint != _fingerprint(method, path, params):
            raise StripeError(
                400,
                "idempotency_error",
                "Keys for idempotent requests can only be used with the same parameters they "
                f"were first used with; use a key other than '{key}' for a different request.",
            )
        headers = {"Idempotent-Replayed": "true", "Original-Request": saved.request_id}
        return _answer(saved.status, saved.body, new_id("req", 14), headers)


def _admit(account: Account) -> None:
    if account.limiter is not None and not account.limiter.admit():
        account.rate_limited += 1
        raise StripeError(
            429,
            "invalid_request_error",
            "Request rate limit exceeded for this account; slow down and retry with backoff.",
            code="rate_limit",
        )


def _api_key(request: Request) -> str:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    if scheme.lower() == "basic" and value.strip():
        with contextlib.suppress(binascii.Error, UnicodeDecodeError):
            user = base64.b64decode(value.strip()).decode().partition(":")[0]
            if user:
                return user
    raise StripeError(
        401,
        "invalid_request_error",
        "You did not provide an API key; send it as `Authorization: Bearer sk_test_...`.",
    )


def _fingerprint(method: str, path: str, params: dict[str, Any]) -> str:
    canonical = json.dumps([method, path, params], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _answer(
    status: int, body: dict[str, Any], request_id: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(
        body, status_code=status, headers={"Request-Id": request_id, **(headers or {})}
    )


def create_app(settings: Settings) -> Starlette:
    """Build the emulator app; deliveries run on the app's event loop between startup and
    shutdown."""
    emulator = Emulator(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await emulator.deliverer.start()
        try:
            yield
        finally:
            await emulator.deliverer.aclose()

    routes = [
        Route("/v1/{path:path}", emulator.handle, methods=["GET", "POST", "DELETE"]),
        *control_routes(emulator),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.emulator = emulator
    return app
