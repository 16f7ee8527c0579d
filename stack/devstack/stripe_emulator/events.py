"""`/v1/events` (list and retrieve) and `/v1/account`.

Events read through the API are rendered at the account's default API version, as Stripe
renders them at the version of their creation; webhook deliveries use each endpoint's own
`api_version`. As Stripe's reference documents the list:
- newest first (`created`, then the order of creation within a second);
- `type`: one event type, or a group with `*` as a wildcard (`customer.subscription.*`);
  `types`: up to 20 exact event types; not both;
- `created`: a Unix time, or bounds `created[gt]`, `[gte]`, `[lt]`, `[lte]`;
- `delivery_success`: `true` for events every webhook they were sent to answered with 2xx,
  `false` for events still pending at, or given up by, at least one webhook (an event sent
  to no webhook counts as delivered);
- `limit` 1-100 (default 10), `starting_after` / `ending_before` cursors, `has_more`;
- events go back 30 days, by the account's clock: older ones are neither listed nor
  retrieved (404), as Stripe keeps them no longer.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

from devstack.stripe_emulator.accounts import Account, Event
from devstack.stripe_emulator.calls import Call
from devstack.stripe_emulator.delivery import render_event
from devstack.stripe_emulator.errors import StripeError

Answer = tuple[int, dict[str, Any]]
RETENTION_SECONDS = 30 * 86400
MAX_TYPES = 20


def retained(event: Event, now: int) -> bool:
    """Whether Stripe still serves `event` at `now`: created at most 30 days before."""
    return now - event.created <= RETENTION_SECONDS


def newest_events(account: Account) -> list[Event]:
    """Every event of the account, retained or not, newest first."""
    return sorted(account.events.values(), key=lambda event: event.order, reverse=True)


def listing(call: Call) -> Answer:
    """GET /v1/events."""
    call.allow(
        "limit",
        "starting_after",
        "ending_before",
        "type",
        "types",
        "created",
        "delivery_success",
    )
    every = newest_events(call.account)
    wanted = _types_filter(call)
    created = _created_filter(call.params.get("created"))
    delivered = call.boolean("delivery_success")
    events = [
        event
        for event in every
        if retained(event, call.now)
        and wanted(event.type)
        and created(event.created)
        and (delivered is None or event.delivered is delivered)
    ]
    version = call.account.default_api_version
    return 200, call.page(
        events,
        url="/v1/events",
        ident=lambda e: e.id,
        render=lambda e: render_event(call.account, e, version),
        universe=every,
        noun="event",
    )


def retrieve(call: Call) -> Answer:
    """GET /v1/events/{id}: only within the 30 days Stripe keeps events."""
    call.allow()
    event = call.find(call.account.events, "event", call.ids["id"])
    if not retained(event, call.now):
        raise StripeError.missing_resource("event", event.id)
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
    "gt": operator.gt,
    "gte": operator.ge,
    "lt": operator.lt,
    "lte": operator.le,
}


def _types_filter(call: Call) -> Callable[[str], bool]:
    single = call.string("type")
    several = call.string_list("types")
    if single is not None and several is not None:
        raise StripeError.invalid(
            "You may pass either `type` or `types`, but not both; put every type in `types`.",
            param="types",
        )
    if several is not None:
        if len(several) > MAX_TYPES:
            raise StripeError.invalid(
                f"Invalid types: must have at most {MAX_TYPES} entries, not {len(several)}.",
                param="types",
            )
        names = frozenset(several)
        return lambda event_type: event_type in names
    if single is not None:
        return lambda event_type: _match(event_type, single)
    return lambda event_type: True


def _created_filter(spec: Any) -> Callable[[int], bool]:
    """`created=T` or `created[gte]=T&created[lt]=U`, as Stripe's list filters take it."""
    if spec is None:
        return lambda stamp: True
    if not isinstance(spec, dict):
        spec = {"": spec}
    limits: list[tuple[Callable[[int, int], bool], int]] = []
    for op, value in spec.items():
        name = f"created[{op}]" if op else "created"
        if op and op not in _BOUNDS:
            raise StripeError.unknown_parameter(name)
        try:
            limits.append((_BOUNDS.get(op, operator.eq), int(value)))
        except (TypeError, ValueError):
            raise StripeError.invalid_value(name, "a Unix timestamp") from None
    return lambda stamp: all(compare(stamp, limit) for compare, limit in limits)


def _match(event_type: str, pattern: str) -> bool:
    if pattern.endswith("*"):
        return event_type.startswith(pattern[:-1])
    return event_type == pattern
