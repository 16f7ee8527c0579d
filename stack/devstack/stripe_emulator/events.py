"""`/v1/events` (list and retrieve) and `/v1/account`.

Events read through the API are rendered at the account's default API version, as Stripe
does; webhook deliveries use each endpoint's own `api_version`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from devstack.stripe_emulator.calls import Call, newest_first
from devstack.stripe_emulator.delivery import render_event
from devstack.stripe_emulator.errors import StripeError

Answer = tuple[int, dict[str, Any]]


def listing(call: Call) -> Answer:
    """GET /v1/events, filtered by `type` (with `*` wildcards) or `types`."""
    call.allow("limit", "starting_after", "ending_before", "type", "types", "created")
    events = newest_first(call.account.events.values())
    single = call.string("type")
    wanted = call.string_list("types") or ([] if single is None else [single])
    if wanted:
        events = [event for event in events if any(_match(event.type, str(w)) for w in wanted)]
    created = _created_filter(call.params.get("created"))
    events = [event for event in events if created(event.created)]
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


_BOUNDS: dict[str, Callable[[int, int], bool]] = {
    "eq": operator.eq,
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _created_filter(spec: Any) -> Callable[[int], bool]:
    """`created=T` or `created[gte]=T&created[lt]=U`, as Stripe's list filters take it."""
    if spec is None:
        return lambda stamp: True
    bounds = spec if isinstance(spec, dict) else {"eq": spec}
    limits: list[tuple[Callable[[int, int], bool], int]] = []
    for op, value in bounds.items():
        if op not in _BOUNDS:
            raise StripeError.unknown_parameter(f"created[{op}]")
        try:
            limits.append((_BOUNDS[op], int(value)))
        except (TypeError, ValueError):
            raise StripeError.invalid_value(f"created[{op}]", "a Unix timestamp") from None
    return lambda stamp: all(compare(stamp, limit) for compare, limit in limits)


def _match(event_type: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern
