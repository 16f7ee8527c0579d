"""`POST /webhooks/{namespace}/{name}`: verify a Stripe delivery, record it, apply it.

The hot path is lean on purpose: the body is read once with a streamed size limit, the HMAC
is computed once per live secret, the JSON is decoded once, no Stripe object is built, and
the database sees two short units of work (the delivery record, then the processing), run
as two transactions in one trip through the committer, with other requests' units.
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime

from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from stripe_webhook_receiver import logs
from stripe_webhook_receiver.bodies import BodyTooLarge, read_body
from stripe_webhook_receiver.database import DatabaseUnavailable
from stripe_webhook_receiver.events import EventError, parse_envelope, parse_subscription
from stripe_webhook_receiver.metrics import event_type_label
from stripe_webhook_receiver.responses import (
    DATABASE_UNAVAILABLE,
    FixedAnswer,
    error_response,
    fixed_response,
)
from stripe_webhook_receiver.runtime import Runtime
from stripe_webhook_receiver.secrets import WebhookConfig
from stripe_webhook_receiver.signing import SignatureError, verify
from stripe_webhook_receiver.store import Delivery, Outcome

log = logs.get("deliveries")

OUTCOME_BODIES = {outcome: fixed_response({"outcome": outcome.value}) for outcome in Outcome}
RECEIPT_NOT_FOUND_BODY = fixed_response(
    {
        "error": {
            "code": "receipt_not_found",
            "message": "No receipt is registered for this subscription; register it with "
            "`POST /v1/receipts` and Stripe's retry will succeed.",
        }
    }
)
OUTCOME_ANSWERS = {
    outcome: FixedAnswer(OUTCOME_BODIES[outcome], outcome.status_code)
    for outcome in Outcome
    if outcome is not Outcome.RECEIPT_NOT_FOUND
}
RECEIPT_NOT_FOUND_ANSWER = FixedAnswer(RECEIPT_NOT_FOUND_BODY, 422)


def _header(scope: Scope, name: bytes) -> str | None:
    """The first value of a header, as Starlette's `Request.headers.get` finds it."""
    for key, value in scope["headers"]:
        if key == name:
            text: str = value.decode("latin-1")
            return text
    return None


class WebhookEndpoint:
    """The ASGI app of `POST /webhooks/{namespace}/{name}`.

    An ASGI app rather than a `Request -> Response` function, so that each delivery costs no
    `Request`, `Headers` or `Response` object and no exception-handling wrapper of its own.
    The app (`app.ReceiverApp`) hands it each POST on its path without Starlette's
    middleware and router, and turns an unexpected error into the JSON 500; Starlette still
    answers 404 and 405 around it, routes here under a `root_path`, and its OpenAPI
    document takes the POST operation from `post`'s docstring.
    """

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # The route lets only POST through: any other method got Starlette's 405 already.
        await self.post(scope, receive, send)

    async def post(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Verify and apply one Stripe delivery.
        ---
        summary: Receive a Stripe `customer.subscription.updated` or `.deleted` event
        parameters:
          - {name: namespace, in: path, required: true, schema: {type: string}}
          - {name: name, in: path, required: true, schema: {type: string}}
          - {name: Stripe-Signature, in: header, required: true, schema: {type: string}}
        requestBody:
          required: true
          content: {application/json: {schema: {type: object}}}
        responses:
          "200": {description: "Applied, a duplicate, or older than the state held (ignored)."}
          "400":
            description: >-
              The signature check failed, the event is unreadable, or its type is not one
              the webhook enabled (customer.subscription.updated, and
              customer.subscription.deleted where enabled); the error code says which.
          "404": {description: No such webhook is loaded.}
          "408": {description: The body did not arrive in time.}
          "413": {description: The body is larger than 1 MiB.}
          "422":
            description: "`receipt_not_found`: no receipt registered for the subscription yet."
          "503":
            description: >-
              `database_unavailable`: the database is unavailable; `overloaded`: the
              receiver holds as many unfinished bodies or connections as it allows.
        """
        answer = await delivery_answer(scope, receive)
        await answer(scope, receive, send)


receive_webhook = WebhookEndpoint()

WEBHOOK_PREFIX = "/webhooks/"


def webhook_path_params(path: str) -> dict[str, str] | None:
    """The path parameters of `/webhooks/{namespace}/{name}` as Starlette's route reads
    them (each part one or more characters other than `/`), or None for another path."""
    if not path.startswith(WEBHOOK_PREFIX):
        return None
    namespace, slash, name = path[len(WEBHOOK_PREFIX) :].partition("/")
    if not namespace or not slash or not name or "/" in name:
        return None
    return {"namespace": namespace, "name": name}


async def delivery_answer(scope: Scope, receive: Receive) -> ASGIApp:
    """Read, verify and apply the delivery in `scope`; return the answer to send."""
    return await _receive(scope["app"].state.runtime, scope, receive)


async def _receive(runtime: Runtime, scope: Scope, receive: Receive) -> ASGIApp:
    params = scope["path_params"]
    webhook = f"{params['namespace']}/{params['name']}"
    config = runtime.secrets.get(webhook)
    if config is None:
        runtime.metrics.delivery("unknown", "", "webhook_not_found").inc()
        return error_response(
            404,
            "webhook_not_found",
            "No webhook of this namespace and name is loaded; check the endpoint URL.",
        )
    settings = runtime.settings
    try:
        body = await read_body(receive, settings.max_body_bytes, settings.client_timeout)
    except BodyTooLarge:
        runtime.metrics.delivery(webhook, "", "payload_too_large").inc()
        return error_response(
            413, "payload_too_large", "The body is larger than 1 MiB; Stripe events are smaller."
        )
    except (TimeoutError, ClientDisconnect):
        runtime.metrics.delivery(webhook, "", "request_timeout").inc()
        return error_response(
            408, "request_timeout", "The body did not arrive in time; send it again."
        )
    return await _handle(runtime, config, _header(scope, b"stripe-signature"), body)


async def _handle(
    runtime: Runtime, config: WebhookConfig, header: str | None, body: bytes
) -> ASGIApp:
    # What is known of the delivery grows step by step; the `Delivery` record is built once,
    # where the request ends, from what is known there.
    started = time.perf_counter()
    webhook = config.webhook
    received_at_ms = int(time.time() * 1000)
    try:
        matched = verify(
            body,
            header,
            config.signing_secrets,
            now=datetime.now(UTC),
            tolerance=runtime.settings.tolerance,
        )
    except SignatureError as exc:
        runtime.metrics.verification_failures.labels(webhook, exc.reason).inc()
        return await _reject(
            runtime, Delivery(webhook, received_at_ms), 400, exc.reason, exc.message
        )
    fingerprint = matched.fingerprint
    event_id: str | None = None
    event_type: str | None = None
    try:
        envelope = parse_envelope(body)
        event_id, event_type = envelope.event_id, envelope.event_type
        if event_type not in config.enabled_events:
            return await _reject(
                runtime,
                Delivery(webhook, received_at_ms, event_id, event_type, fingerprint=fingerprint),
                400,
                "unsupported_event_type",
                unsupported_type_message(config.enabled_events),
            )
        event = parse_subscription(envelope)
    except EventError as exc:
        refused = Delivery(webhook, received_at_ms, event_id, event_type, fingerprint=fingerprint)
        return await _reject(runtime, refused, 400, exc.code, exc.message)
    received = Delivery(
        webhook,
        received_at_ms,
        event.event_id,
        envelope.event_type,
        event.state.subscription_id,
        fingerprint,
    )
    try:
        if not runtime.migrated.is_set():
            raise DatabaseUnavailable("The database schema is not migrated yet.")
        outcome = await runtime.store.record_and_process(received, event, body)
    except DatabaseUnavailable as exc:
        runtime.metrics.delivery(webhook, envelope.event_type, "unavailable").inc()
        _log(received, "database_unavailable", 503, started, error=type(exc).__name__)
        return error_response(503, "database_unavailable", DATABASE_UNAVAILABLE)
    runtime.metrics.delivery(webhook, envelope.event_type, outcome.value).inc()
    runtime.metrics.processing_seconds.observe(time.perf_counter() - started)
    _log(received, outcome.value, outcome.status_code, started)
    if outcome is Outcome.RECEIPT_NOT_FOUND:
        return RECEIPT_NOT_FOUND_ANSWER
    return OUTCOME_ANSWERS[outcome]


def unsupported_type_message(accepted: tuple[str, ...]) -> str:
    """When an event's type is not one the webhook enabled, say which types it accepts."""
    names = " and ".join(f"`{name}`" for name in accepted)
    listed = ", ".join(f"'{name}'" for name in accepted)
    return f"Only {names} events are accepted; set the endpoint's `enabled_events` to [{listed}]."


async def _reject(
    runtime: Runtime, delivery: Delivery, status: int, code: str, message: str
) -> Response:
    """Record a refused delivery (best effort: the refusal stands without the database)."""
    runtime.metrics.delivery(delivery.webhook, event_type_label(delivery.event_type), code).inc()
    try:
        if not runtime.migrated.is_set():
            raise DatabaseUnavailable("The database schema is not migrated yet.")
        await runtime.store.record_delivery(delivery, code, status)
    except DatabaseUnavailable:
        log.warning(
            "A refused delivery could not be recorded: the database is unavailable.",
            extra={"fields": {"webhook": delivery.webhook, "outcome": code}},
        )
    _log(delivery, code, status, None)
    return error_response(status, code, message)


def _log(
    delivery: Delivery, outcome: str, status: int, started: float | None, error: str = ""
) -> None:
    # Building the fields costs more than the check: skip it when INFO lines are not wanted.
    if not log.isEnabledFor(logging.INFO):
        return
    fields: dict[str, object] = {
        "webhook": delivery.webhook,
        "event_id": delivery.event_id,
        "event_type": delivery.event_type,
        "subscription_id": delivery.subscription_id,
        "secret_fingerprint": delivery.fingerprint,
        "outcome": outcome,
        "status": status,
    }
    if started is not None:
        fields["duration_ms"] = round((time.perf_counter() - started) * 1000, 3)
    if error:
        fields["error"] = error
    log.info("Delivery answered.", extra={"fields": fields})
