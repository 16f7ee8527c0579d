"""`/v1/events` (list and retrieve) and `/v1/account`.

Events read through the API are rendered at the account's default API version, as Stripe
does; webhook deliveries use each endpoint's own `api_version`.
"""

from __future__ import annotations

from typing import Any

from devstack.stripe_emulator.calls import Call, newest_first
from devstack.stripe_emulator.delivery import render_event

Answer = tuple[int, dict[str, Any]]


def listing(call: Call) -> Answer:
    """GET /v1/events, filtered by `type` (with `*` wildcards) or `types`."""
    call.allow("limit", "starting_after", "ending_before", "type", "types", "created")
    events = newest_first(call.account.events.values())
    single = call.string("type")
    wanted = call.string_list("types") or ([] if single is None else [single])
    if wanted:
        events = [event for event in events if any(_match(event.type, str(w)) for w in wanted)]
    version = call.account.default_api_version
    return 200, call.page(
        events,
        url="/v1/events",
        ident=lambda e: e.id,
        render=lambda e: render_event(call.account, e, version),
    )


def retrieve(call: Call) -> Answer:
    """GET /v1/events/{id}."""
    call.allow()
    event = call.find(call.account.events, "event", call.ids["id"])
    return 200, render_event(call.account, event, call.account.default_api_version)


def account(call: Call) -> Answer:
    """GET /v1/account: the account behind the API key."""
    call.allow()
    return 200, {
        "id": call.account.id,
        "object": "account",
        "charges_enabled": True,
        "country": "US",
        "default_currency": "usd",
        "details_submitted": True,
        "payouts_enabled": True,
        "settings": {"dashboard": {"display_name": "Stripe emulator", "timezone": "Etc/UTC"}},
        "type": "standard",
    }


def _match(event_type: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern
