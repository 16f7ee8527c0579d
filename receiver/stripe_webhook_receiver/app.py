"""The receiver's ASGI application: `create_app(settings)`, the `routes` and the `lifespan`."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.schemas import SchemaGenerator
from starlette.types import Receive, Scope, Send

from stripe_webhook_receiver import __version__, logs
from stripe_webhook_receiver.deliveries import (
    delivery_answer,
    receive_webhook,
    webhook_path_params,
)
from stripe_webhook_receiver.metrics import Metrics
from stripe_webhook_receiver.receipts import get_subscriber, register_receipt
from stripe_webhook_receiver.responses import JSON, error_response, fixed_response, json_response
from stripe_webhook_receiver.runtime import Runtime
from stripe_webhook_receiver.settings import Settings

log = logs.get("app")

schemas = SchemaGenerator(
    {
        "openapi": "3.0.3",
        "info": {"title": "stripe-webhook-receiver", "version": __version__},
        "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    }
)


async def healthz(request: Request) -> Response:
    """Answer 200 while the process serves requests.
    ---
    summary: Liveness
    responses:
      "200": {description: The process is alive.}
    """
    return json_response({"status": "ok"})


async def readyz(request: Request) -> Response:
    """Answer 200 once the secrets are loaded and the database is migrated and answering.
    ---
    summary: Readiness
    responses:
      "200": {description: Ready to receive deliveries.}
      "503": {description: "`not_ready`: the message says what is missing."}
    """
    runtime: Runtime = request.app.state.runtime
    problems = []
    if not runtime.secrets.loaded:
        problems.append(f"the secrets directory '{runtime.settings.secrets_dir}' is not readable")
    if not runtime.migrated.is_set():
        problems.append("the database is not migrated yet")
    elif not await runtime.database_answers():
        problems.append("the database does not answer")
    if problems:
        return error_response(503, "not_ready", "Not ready: " + "; ".join(problems) + ".")
    return json_response({"status": "ready", "webhooks": len(runtime.secrets.webhooks)})


async def webhook_readiness(request: Request) -> Response:
    """List the fingerprints of the signing secrets held for one webhook (never the secrets).
    ---
    summary: Signing secrets held for a webhook, by fingerprint
    parameters:
      - {name: namespace, in: path, required: true, schema: {type: string}}
      - {name: name, in: path, required: true, schema: {type: string}}
    responses:
      "200":
        description: >-
          The webhook is loaded: `webhook`, `endpoint_id`, `fingerprints` (the first 16 hex
          digits of each live secret's SHA-256).
      "404": {description: "`webhook_not_found`: no such webhook is loaded."}
    """
    runtime: Runtime = request.app.state.runtime
    webhook = f"{request.path_params['namespace']}/{request.path_params['name']}"
    config = runtime.secrets.get(webhook)
    if config is None:
        return error_response(
            404,
            "webhook_not_found",
            f"Webhook '{webhook}' is not loaded; its file has not reached the secrets directory.",
        )
    now = datetime.now(UTC)
    return json_response(
        {
            "webhook": webhook,
            "endpoint_id": config.endpoint_id,
            "fingerprints": [s.fingerprint for s in config.signing_secrets if s.live_at(now)],
        }
    )


async def metrics(request: Request) -> Response:
    """Prometheus metrics in the text exposition format.
    ---
    summary: Prometheus metrics
    responses:
      "200": {description: Metrics in the Prometheus text format.}
    """
    registry = request.app.state.metrics.registry
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)


async def openapi(request: Request) -> Response:
    """This API's OpenAPI document, generated from the routes.
    ---
    summary: OpenAPI document
    responses:
      "200": {description: The OpenAPI 3 document.}
    """
    # Generating it parses every route's docstring (~30 ms): once per app, not per request,
    # or a client asking for it in a loop would keep a core busy.
    body: bytes | None = getattr(request.app.state, "openapi", None)
    if body is None:
        body = fixed_response(schemas.get_schema(routes=request.app.routes))
        request.app.state.openapi = body
    return Response(body, media_type=JSON)


routes = [
    Route("/webhooks/{namespace}/{name}", receive_webhook, methods=["POST"]),
    Route("/v1/receipts", register_receipt, methods=["POST"]),
    Route("/v1/subscribers/{app_user_id}", get_subscriber, methods=["GET"]),
    Route("/healthz", healthz, methods=["GET"]),
    Route("/readyz", readyz, methods=["GET"]),
    Route("/readyz/webhooks/{namespace}/{name}", webhook_readiness, methods=["GET"]),
    Route("/metrics", metrics, methods=["GET"]),
    Route("/openapi.json", openapi, methods=["GET"]),
]


@asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    """Open the secrets and the database at start; stop the loops and close at shutdown."""
    runtime = Runtime.open(app.state.settings, app.state.metrics)
    app.state.runtime = runtime
    runtime.start()
    log.info(
        "Receiver started.",
        extra={
            "fields": {
                "secrets_dir": str(runtime.settings.secrets_dir),
                "database": runtime.database.dialect,
            }
        },
    )
    try:
        yield
    finally:
        await runtime.stop()
        log.info("Receiver stopped.")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 405:
        return error_response(
            405, "method_not_allowed", f"Method {request.method} is not allowed on this path."
        )
    if exc.status_code == 404:
        return error_response(404, "not_found", "No such path; see /openapi.json for the API.")
    return error_response(exc.status_code, "http_error", str(exc.detail))


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error(
        "Unexpected error while answering a request.",
        exc_info=(type(exc), exc, None),
        extra={"fields": {"path": request.url.path}},
    )
    return error_response(500, "internal_error", "The receiver failed unexpectedly.")


class ReceiverApp(Starlette):
    """Starlette, with Stripe's deliveries taken straight to their endpoint.

    A `POST /webhooks/{namespace}/{name}` is what the receiver answers thousands of times a
    second; Starlette's error and exception middleware, its router and its route would wrap
    each one in three more coroutines and two more `send` functions (~15 % of a delivery's
    CPU at saturation). Such a request goes to the endpoint directly, with what those layers
    give it kept: `scope["app"]`, the route's path parameters, and the JSON 500 (logged, then
    raised on to the server) when the endpoint fails before it answers. Every other request,
    and a delivery under a `root_path`, goes through Starlette as before.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and not scope.get("root_path"):
            params = webhook_path_params(scope["path"])
            if params is not None:
                scope["app"] = self
                scope["path_params"] = params
                await _deliver(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


async def _deliver(scope: Scope, receive: Receive, send: Send) -> None:
    try:
        answer = await delivery_answer(scope, receive)
    except Exception as exc:
        failure = await _internal_error(Request(scope), exc)
        await failure(scope, receive, send)
        raise
    await answer(scope, receive, send)


def create_app(settings: Settings) -> Starlette:
    """Build the receiver application for `settings` (start it with uvicorn)."""
    app = ReceiverApp(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HTTPException: _http_error, Exception: _internal_error},
    )
    # No redirect to the slash-less path: Stripe does not follow redirects, and a bare 307
    # would echo a traversal path back (`/webhooks/../../%2F` -> `/webhooks/../..`).
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.metrics = Metrics()
    return app
