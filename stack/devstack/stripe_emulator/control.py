"""`/_emulator/`: what is not Stripe's API — fault injection, delivery attempts, counters,
and the dashboard actions (disable an endpoint as Stripe does, delete it, roll its secret).

    GET    /_emulator/health                          {"ok": true, "pending_deliveries": n}
    GET    /_emulator/stats                           {"accounts": [<stats>, ...]}
    GET    /_emulator/accounts/{acct}/stats           {"account", "calls": {"POST /v1/...": n},
                                                       "total", "rate_limited", "faults_served",
                                                       "idempotency_key_in_use"}
    POST   /_emulator/accounts/{acct}/stats/reset     zero the counters, answer the stats
    GET    /_emulator/accounts/{acct}/clock           {"now": unix seconds, "frozen": bool}
    POST   /_emulator/accounts/{acct}/clock           {"now": T} stops the account's clock at T;
           {"advance": s} moves it s seconds on (and stops it there); {"resume": true} runs it
           with the wall clock again -> the clock. It stamps what the account's requests
           create (`created`, periods, `ended_at`) and the events' 30-day retention; delivery
           signatures keep the wall clock
    GET    /_emulator/accounts/{acct}/rate_limit      {"rate": requests/s | null (unlimited)}
    POST   /_emulator/accounts/{acct}/rate_limit      {"rate": r | null}: the account's own
           limit from now on, a full bucket (a benchmark fills an account quickly, then
           measures at Stripe's limit)
    GET    /_emulator/accounts/{acct}/events          every event ever created, beyond the
           retention too, oldest first: {"data": [{"id", "type", "created", "object",
           "retained", "deliveries": {"we_...": "pending"|"succeeded"|"failed"}}]}
    GET    /_emulator/accounts/{acct}/deliveries      ?endpoint=we_&event=evt_&event_type=...
           {"data": [{"sequence", "endpoint", "event", "event_type", "attempt", "status",
                      "error", "time"}], "in_progress": n}
    POST   /_emulator/faults                          {"path_prefix": "/v1/", "method": "POST",
           "account": "acct_...", "status": 429|500|502|503|504, "should_retry": bool,
           "latency": s, "answer_latency": s, "work_latency": s, "drop": "before"|"after",
           "count": n|null}
           -> 201 {"id"}
    GET    /_emulator/faults                          {"data": [<fault>, ...]}
    DELETE /_emulator/faults?account=acct_...         remove them (all without `account`)
    POST   /_emulator/webhook_endpoints/{id}/disable  status 'disabled', as Stripe does to
                                                      an endpoint that keeps failing
    DELETE /_emulator/webhook_endpoints/{id}          deleted as in the dashboard
    POST   /_emulator/webhook_endpoints/{id}/roll_secret  {"expires_in": s} -> {"secret"}:
           a new secret; the old ones keep signing (a second `v1`) for `expires_in` seconds

An account id is what `GET /v1/account` answers for its API key. JSON in and out; errors are
`{"error": {"message": ...}}` with 400 or 404.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from devstack.stripe_emulator.accounts import Account, Endpoint, SigningSecret
from devstack.stripe_emulator.events import newest_events, retained
from devstack.stripe_emulator.faults import parse_fault
from devstack.stripe_emulator.limiter import TokenBucket
from devstack.stripe_emulator.webhook_endpoints import new_secret

if TYPE_CHECKING:
    from devstack.stripe_emulator.app import Emulator


def _problem(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": {"message": message}}, status_code=status)


def control_routes(emulator: Emulator) -> list[Route]:
    """The routes under `/_emulator/`, bound to `emulator`."""
    registry, faults = emulator.registry, emulator.faults

    def account_of(request: Request) -> Account | JSONResponse:
        account = registry.get(request.path_params["account"])
        if account is None:
            return _problem(
                404,
                f"No account '{request.path_params['account']}'; "
                "an account appears on its API key's first request.",
            )
        return account

    def endpoint_of(request: Request) -> tuple[Account, Endpoint] | JSONResponse:
        found = registry.find_endpoint(request.path_params["id"])
        if found is None:
            return _problem(404, f"No webhook endpoint '{request.path_params['id']}'.")
        return found

    async def health(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True, "pending_deliveries": emulator.deliverer.pending()})

    async def stats(request: Request) -> JSONResponse:
        return JSONResponse({"accounts": [a.stats() for a in registry.all()]})

    async def account_stats(request: Request) -> JSONResponse:
        account = account_of(request)
        if isinstance(account, JSONResponse):
            return account
        if request.url.path.endswith("/reset"):
            account.calls.clear()
            account.rate_limited = account.faults_served = account.keys_in_use_refused = 0
        return JSONResponse(account.stats())

    async def add_fault(request: Request) -> JSONResponse:
        try:
            spec = await request.json()
            if not isinstance(spec, dict):
                raise ValueError("the body must be a JSON object")
            fault = parse_fault(spec)
        except ValueError as exc:
            return _problem(400, str(exc))
        faults.add(fault)
        return JSONResponse({"id": fault.id}, status_code=201)

    async def list_faults(request: Request) -> JSONResponse:
        return JSONResponse({"data": faults.listing()})

    async def clear_faults(request: Request) -> JSONResponse:
        faults.clear(request.query_params.get("account"))
        return JSONResponse({"data": faults.listing()})

    async def deliveries(request: Request) -> JSONResponse:
        account = account_of(request)
        if isinstance(account, JSONResponse):
            return account
        query = request.query_params
        rows: list[dict[str, Any]] = [
            row
            for row in account.attempts
            if all(query.get(f) in (None, row[f]) for f in ("endpoint", "event", "event_type"))
        ]
        return JSONResponse({"data": rows, "in_progress": account.deliveries_in_progress})

    async def clock(request: Request) -> JSONResponse:
        account = account_of(request)
        if isinstance(account, JSONResponse):
            return account
        if request.method == "POST":
            try:
                _set_clock(account, await request.json())
            except ValueError as exc:
                return _problem(400, str(exc))
        return JSONResponse(account.clock.render())

    async def rate_limit(request: Request) -> JSONResponse:
        account = account_of(request)
        if isinstance(account, JSONResponse):
            return account
        if request.method == "POST":
            try:
                _set_rate_limit(account, await request.json())
            except ValueError as exc:
                return _problem(400, str(exc))
        return JSONResponse({"rate": None if account.limiter is None else account.limiter.rate})

    async def event_log(request: Request) -> JSONResponse:
        account = account_of(request)
        if isinstance(account, JSONResponse):
            return account
        moment = account.clock.now()
        rows = [
            {
                "id": event.id,
                "type": event.type,
                "created": event.created,
                "object": event.after.get("id"),
                "retained": retained(event, moment),
                "deliveries": dict(event.deliveries),
            }
            for event in reversed(newest_events(account))
        ]
        return JSONResponse({"data": rows})

    async def disable_endpoint(request: Request) -> JSONResponse:
        found = endpoint_of(request)
        if isinstance(found, JSONResponse):
            return found
        found[1].status = "disabled"
        return JSONResponse(found[1].render())

    async def delete_endpoint(request: Request) -> JSONResponse:
        found = endpoint_of(request)
        if isinstance(found, JSONResponse):
            return found
        account, endpoint = found
        del account.endpoints[endpoint.id]
        return JSONResponse({"id": endpoint.id, "object": "webhook_endpoint", "deleted": True})

    async def roll_secret(request: Request) -> JSONResponse:
        found = endpoint_of(request)
        if isinstance(found, JSONResponse):
            return found
        body = await request.json() if await request.body() else {}
        expires_in = float(body.get("expires_in", 0))
        endpoint = found[1]
        moment = time.time()
        for secret in endpoint.secrets:
            if secret.live(moment):
                secret.expires_at = moment + expires_in
        fresh = SigningSecret(new_secret())
        endpoint.secrets.append(fresh)
        return JSONResponse({"id": endpoint.id, "secret": fresh.value})

    return [
        Route("/_emulator/health", health),
        Route("/_emulator/stats", stats),
        Route("/_emulator/accounts/{account}/stats", account_stats),
        Route("/_emulator/accounts/{account}/stats/reset", account_stats, methods=["POST"]),
        Route("/_emulator/accounts/{account}/deliveries", deliveries),
        Route("/_emulator/accounts/{account}/clock", clock, methods=["GET", "POST"]),
        Route("/_emulator/accounts/{account}/rate_limit", rate_limit, methods=["GET", "POST"]),
        Route("/_emulator/accounts/{account}/events", event_log),
        Route("/_emulator/faults", add_fault, methods=["POST"]),
        Route("/_emulator/faults", list_faults, methods=["GET"]),
        Route("/_emulator/faults", clear_faults, methods=["DELETE"]),
        Route("/_emulator/webhook_endpoints/{id}/disable", disable_endpoint, methods=["POST"]),
        Route("/_emulator/webhook_endpoints/{id}", delete_endpoint, methods=["DELETE"]),
        Route("/_emulator/webhook_endpoints/{id}/roll_secret", roll_secret, methods=["POST"]),
    ]


def _set_clock(account: Account, body: Any) -> None:
    """Carry out one clock command; raise ValueError with what to send instead."""
    commands = ("now", "advance", "resume")
    given = [name for name in commands if isinstance(body, dict) and name in body]
    if len(given) != 1:
        raise ValueError(
            'Send exactly one of {"now": <unix seconds>}, {"advance": <seconds>} or '
            '{"resume": true}.'
        )
    value = body[given[0]]
    if given[0] == "resume":
        if value is not True:
            raise ValueError('Send {"resume": true} to run the clock with the wall clock again.')
        account.clock.resume()
        return
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"`{given[0]}` must be a whole number of seconds.")
    if given[0] == "now":
        if value < 0:
            raise ValueError("`now` must be a Unix time in seconds, not negative.")
        account.clock.set(value)
    else:
        if value < 0:
            raise ValueError("`advance` must not be negative; set an earlier time with `now`.")
        account.clock.advance(value)


def _set_rate_limit(account: Account, body: Any) -> None:
    """Give the account a limit of `rate` requests/s (None: unlimited); raise ValueError with
    what to send instead."""
    rate = body.get("rate", ...) if isinstance(body, dict) else ...
    if rate is None:
        account.limiter = None
        return
    if isinstance(rate, bool) or not isinstance(rate, int | float) or rate <= 0:
        raise ValueError(
            'Send {"rate": <requests per second, above 0>} or {"rate": null} for no limit.'
        )
    account.limiter = TokenBucket(float(rate))
