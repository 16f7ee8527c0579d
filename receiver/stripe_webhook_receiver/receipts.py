"""The app-facing API: `POST /v1/receipts` and `GET /v1/subscribers/{app_user_id}`.

Each app authenticates with its webhook's receipts API key (`Authorization: Bearer ...`).
The receiver holds only the key's SHA-256, and the key alone decides which webhook's data a
request reads or writes: there is no parameter naming the webhook, so no key can reach
another app's subscribers.
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from stripe_webhook_receiver import logs
from stripe_webhook_receiver.bodies import BodyTooLarge, read_body
from stripe_webhook_receiver.database import DatabaseUnavailable
from stripe_webhook_receiver.events import is_text
from stripe_webhook_receiver.responses import DATABASE_UNAVAILABLE, error_response, json_response
from stripe_webhook_receiver.runtime import Runtime
from stripe_webhook_receiver.secrets import WebhookConfig
from stripe_webhook_receiver.subscribers import subscriber_document

log = logs.get("receipts")
MAX_RECEIPT_BODY = 16 * 1024
MAX_FIELD_LENGTH = 255
SUBSCRIPTION_PREFIX = "sub_"


class ApiError(Exception):
    """A request to the app-facing API that must be refused with `status` and `code`."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def response(self) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if self.status == 401 else None
        return error_response(self.status, self.code, self.message, headers)


def authenticate(request: Request, runtime: Runtime) -> WebhookConfig:
    """Return the webhook whose receipts API key the request bears, or raise ApiError 401."""
    scheme, _, key = request.headers.get("authorization", "").partition(" ")
    config = None
    if scheme.lower() == "bearer" and key.strip():
        config = runtime.secrets.webhook_for_key(key.strip())
    if config is None:
        raise ApiError(
            401,
            "unauthorized",
            "The request must carry `Authorization: Bearer <receipts-api-key>` with the "
            "key from the webhook's Secret.",
        )
    return config


def _require_migrated(runtime: Runtime) -> None:
    if not runtime.migrated.is_set():
        raise DatabaseUnavailable("The database schema is not migrated yet.")


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if (
        not isinstance(value, str)
        or not value
        or len(value) > MAX_FIELD_LENGTH
        or not is_text(value)
    ):
        raise ApiError(
            400,
            "invalid_request",
            f"`{key}` must be a non-empty string of at most 255 characters, without unpaired "
            "surrogate escapes.",
        )
    return value


async def _receipt_request(request: Request, runtime: Runtime) -> tuple[str, str]:
    try:
        body = await read_body(request.receive, MAX_RECEIPT_BODY, runtime.settings.client_timeout)
    except BodyTooLarge:
        raise ApiError(413, "payload_too_large", "The body must be at most 16 KiB.") from None
    except (TimeoutError, ClientDisconnect):
        raise ApiError(408, "request_timeout", "The body did not arrive in time.") from None
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        data = None
    if not isinstance(data, dict):
        raise ApiError(
            400,
            "invalid_request",
            'The body must be a JSON object such as {"app_user_id": "...", "fetch_token": '
            '"sub_..."}.',
        )
    app_user_id = _text(data, "app_user_id")
    fetch_token = _text(data, "fetch_token")
    if not fetch_token.startswith(SUBSCRIPTION_PREFIX):
        raise ApiError(
            400,
            "invalid_request",
            "`fetch_token` must be a Stripe subscription id starting with 'sub_'.",
        )
    return app_user_id, fetch_token


async def register_receipt(request: Request) -> Response:
    """Register a Stripe subscription for a subscriber of the app the key belongs to.
    ---
    summary: Register a receipt (a Stripe subscription id) for an app user
    security: [{bearer: []}]
    requestBody:
      required: true
      content:
        application/json:
          schema:
            type: object
            required: [app_user_id, fetch_token]
            properties:
              app_user_id: {type: string, maxLength: 255}
              fetch_token:
                {type: string, maxLength: 255, description: "The subscription id, sub_..."}
    responses:
      "200": {description: Already registered to this user; the subscriber document.}
      "201": {description: Registered; the subscriber document.}
      "400": {description: The body is not a valid receipt.}
      "401": {description: Missing or unknown receipts API key.}
      "409":
        description: "`fetch_token_in_use`: the subscription belongs to another user of the app."
      "413": {description: The body is larger than 16 KiB.}
      "503": {description: "The database is unavailable, or the receiver is `overloaded`."}
    """
    runtime: Runtime = request.app.state.runtime
    try:
        config = authenticate(request, runtime)
        app_user_id, fetch_token = await _receipt_request(request, runtime)
        _require_migrated(runtime)
        result = await runtime.store.register_receipt(config.webhook, app_user_id, fetch_token)
        if result.conflict:
            runtime.metrics.receipts.labels(config.webhook, "conflict").inc()
            raise ApiError(
                409,
                "fetch_token_in_use",
                f"Subscription '{fetch_token}' is already registered to another user of this "
                "app; register it under that `app_user_id` or use another subscription.",
            )
        runtime.metrics.receipts.labels(
            config.webhook, "created" if result.created else "existing"
        ).inc()
        if result.replayed:
            runtime.metrics.replayed_deliveries.labels(config.webhook).inc(result.replayed)
        log.info(
            "Receipt registered.",
            extra={
                "fields": {
                    "webhook": config.webhook,
                    "subscription_id": fetch_token,
                    "created": result.created,
                    "replayed_deliveries": result.replayed,
                }
            },
        )
        document = await _document(runtime, config, app_user_id)
    except ApiError as exc:
        return exc.response()
    except DatabaseUnavailable:
        return error_response(503, "database_unavailable", DATABASE_UNAVAILABLE)
    return json_response(document, 201 if result.created else 200)


async def get_subscriber(request: Request) -> Response:
    """Return a subscriber's subscriptions and active entitlements.
    ---
    summary: Read a subscriber's subscriptions and active entitlements
    security: [{bearer: []}]
    parameters:
      - {name: app_user_id, in: path, required: true, schema: {type: string, maxLength: 255}}
    responses:
      "200":
        description: "The subscriber document (RevenueCat's shape); empty for an unknown user."
      "400": {description: The user id is too long.}
      "401": {description: Missing or unknown receipts API key.}
      "503": {description: The database is unavailable.}
    """
    runtime: Runtime = request.app.state.runtime
    app_user_id: str = request.path_params["app_user_id"]
    try:
        config = authenticate(request, runtime)
        if len(app_user_id) > MAX_FIELD_LENGTH:
            raise ApiError(400, "invalid_request", "`app_user_id` must be at most 255 characters.")
        _require_migrated(runtime)
        document = await _document(runtime, config, app_user_id)
    except ApiError as exc:
        return exc.response()
    except DatabaseUnavailable:
        return error_response(503, "database_unavailable", DATABASE_UNAVAILABLE)
    return json_response(document)


async def _document(runtime: Runtime, config: WebhookConfig, app_user_id: str) -> dict[str, Any]:
    first_seen, rows = await runtime.store.subscriber(config.webhook, app_user_id)
    return subscriber_document(app_user_id, first_seen, rows, config.entitlements, time.time())
