"""`/v1/webhook_endpoints`: create (the only answer carrying `secret`), retrieve, update,
list and delete, with Stripe's limit of 16 endpoints per account."""

from __future__ import annotations

import re
import secrets
from typing import Any
from urllib.parse import urlsplit

from devstack.stripe_emulator import versions
from devstack.stripe_emulator.accounts import Endpoint, SigningSecret, new_id
from devstack.stripe_emulator.calls import Call, newest_first
from devstack.stripe_emulator.errors import StripeError

ENDPOINT_LIMIT = 16
_EVENT_NAME = re.compile(r"^(\*|[a-z_]+(\.[a-z_]+)+)$")
Answer = tuple[int, dict[str, Any]]


def new_secret() -> str:
    return "whsec_" + secrets.token_hex(16)


def create(call: Call) -> Answer:
    """POST /v1/webhook_endpoints."""
    call.allow("url", "enabled_events", "api_version", "connect", "description", "metadata")
    url = _valid_url(call.require("url"))
    call.require("enabled_events")
    events = _events(call) or []
    api_version = call.string("api_version")
    if api_version is not None:
        versions.check_api_version(api_version)
    connect = call.boolean("connect")
    description = call.string("description", nullable=True)
    metadata = call.metadata()
    account = call.account
    if len(account.endpoints) >= ENDPOINT_LIMIT:
        raise StripeError.invalid(
            f"You have reached the maximum of {ENDPOINT_LIMIT} test webhook endpoints."
        )
    endpoint = Endpoint(
        id=new_id("we"),
        url=url,
        enabled_events=events,
        api_version=api_version,
        application=new_id("ca") if connect else None,
        description=description,
        metadata=metadata,
        created=call.now,
        secrets=[SigningSecret(new_secret())],
    )
    account.endpoints[endpoint.id] = endpoint
    return 200, {**endpoint.render(), "secret": endpoint.secrets[0].value}


def retrieve(call: Call) -> Answer:
    """GET /v1/webhook_endpoints/{id}."""
    call.allow()
    return 200, _find(call).render()


def update(call: Call) -> Answer:
    """POST /v1/webhook_endpoints/{id}: only url, enabled_events, description, metadata and
    disabled change in place; anything else (api_version, connect) is an unknown parameter."""
    call.allow("url", "enabled_events", "description", "metadata", "disabled")
    endpoint = _find(call)
    events = _events(call)
    disabled = call.boolean("disabled")
    if "url" in call.params:
        endpoint.url = _valid_url(call.params["url"])
    if events is not None:
        endpoint.enabled_events = events
    if "description" in call.params:
        endpoint.description = call.string("description", nullable=True)
    endpoint.metadata = call.metadata(endpoint.metadata)
    if disabled is not None:
        endpoint.status = "disabled" if disabled else "enabled"
    return 200, endpoint.render()


def delete(call: Call) -> Answer:
    """DELETE /v1/webhook_endpoints/{id}."""
    call.allow()
    endpoint = _find(call)
    del call.account.endpoints[endpoint.id]
    return 200, {"id": endpoint.id, "object": "webhook_endpoint", "deleted": True}


def listing(call: Call) -> Answer:
    """GET /v1/webhook_endpoints."""
    call.allow("limit", "starting_after", "ending_before")
    endpoints = newest_first(call.account.endpoints.values())
    return 200, call.page(
        endpoints, url="/v1/webhook_endpoints", ident=lambda e: e.id, render=Endpoint.render
    )


def _find(call: Call) -> Endpoint:
    return call.find(call.account.endpoints, "webhook endpoint", call.ids["id"])


def _valid_url(url: Any) -> str:
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise StripeError.invalid(f"Invalid URL: {url}", param="url", code="url_invalid")
    return str(url)


def _events(call: Call) -> list[str] | None:
    events = call.string_list("enabled_events")
    if events is None:
        return None
    if not events:
        raise StripeError.missing_parameter("enabled_events")
    for index, name in enumerate(events):
        if not _EVENT_NAME.match(name):
            raise StripeError.invalid(
                f"Invalid enabled_events[{index}]: '{name}' is not an event type.",
                param=f"enabled_events[{index}]",
            )
    return events
