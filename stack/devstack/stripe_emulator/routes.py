"""The table of Stripe API paths the emulator serves, matched by method and template."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from devstack.stripe_emulator import catalog, customers, events, subscriptions, webhook_endpoints
from devstack.stripe_emulator.calls import Call

Handler = Callable[[Call], tuple[int, dict[str, Any]]]


@dataclass(frozen=True)
class ApiRoute:
    """One Stripe operation: `template` such as `/v1/webhook_endpoints/{id}`."""

    method: str
    template: str
    handler: Handler

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", self.template) + "$")


API_ROUTES = (
    ApiRoute("GET", "/v1/account", events.account),
    ApiRoute("POST", "/v1/webhook_endpoints", webhook_endpoints.create),
    ApiRoute("GET", "/v1/webhook_endpoints", webhook_endpoints.listing),
    ApiRoute("GET", "/v1/webhook_endpoints/{id}", webhook_endpoints.retrieve),
    ApiRoute("POST", "/v1/webhook_endpoints/{id}", webhook_endpoints.update),
    ApiRoute("DELETE", "/v1/webhook_endpoints/{id}", webhook_endpoints.delete),
    ApiRoute("POST", "/v1/products", catalog.create_product),
    ApiRoute("GET", "/v1/products", catalog.list_products),
    ApiRoute("GET", "/v1/products/{id}", catalog.retrieve_product),
    ApiRoute("POST", "/v1/products/{id}", catalog.update_product),
    ApiRoute("POST", "/v1/prices", catalog.create_price),
    ApiRoute("GET", "/v1/prices", catalog.list_prices),
    ApiRoute("GET", "/v1/prices/{id}", catalog.retrieve_price),
    ApiRoute("POST", "/v1/prices/{id}", catalog.update_price),
    ApiRoute("POST", "/v1/customers", customers.create),
    ApiRoute("GET", "/v1/customers", customers.listing),
    ApiRoute("GET", "/v1/customers/{id}", customers.retrieve),
    ApiRoute("POST", "/v1/customers/{id}", customers.update),
    ApiRoute("POST", "/v1/subscriptions", subscriptions.create),
    ApiRoute("GET", "/v1/subscriptions", subscriptions.listing),
    ApiRoute("GET", "/v1/subscriptions/{id}", subscriptions.retrieve),
    ApiRoute("POST", "/v1/subscriptions/{id}", subscriptions.update),
    ApiRoute("DELETE", "/v1/subscriptions/{id}", subscriptions.cancel),
    ApiRoute("GET", "/v1/events", events.listing),
    ApiRoute("GET", "/v1/events/{id}", events.retrieve),
)
_COMPILED = [(route, route.pattern) for route in API_ROUTES]


def resolve(method: str, path: str) -> tuple[ApiRoute, dict[str, str]] | None:
    """Find the operation for `method path` and its path parameters."""
    for route, pattern in _COMPILED:
        if route.method != method:
            continue
        match = pattern.match(path)
        if match is not None:
            return route, match.groupdict()
    return None
