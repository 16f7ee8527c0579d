"""`/v1/customers`: create, retrieve, update, list."""

from __future__ import annotations

from typing import Any

from devstack.stripe_emulator.accounts import new_id
from devstack.stripe_emulator.calls import Call, newest_first
from devstack.stripe_emulator.errors import StripeError

Answer = tuple[int, dict[str, Any]]
_FIELDS = ("email", "name", "description", "phone")


def create(call: Call) -> Answer:
    """POST /v1/customers; `payment_method` (a test token such as `pm_card_visa`) and
    `invoice_settings[default_payment_method]` are kept as given, nothing is charged."""
    call.allow(*_FIELDS, "metadata", "payment_method", "invoice_settings")
    customer: dict[str, Any] = {
        "id": new_id("cus", 14),
        "object": "customer",
        "created": call.now,
        "livemode": False,
        "metadata": call.metadata(),
        "delinquent": False,
        "currency": None,
        "invoice_settings": _invoice_settings(call),
    }
    for name in _FIELDS:
        customer[name] = call.string(name, nullable=True)
    call.account.customers[customer["id"]] = customer
    call.emit("customer.created", customer)
    return 200, customer


def retrieve(call: Call) -> Answer:
    """GET /v1/customers/{id}."""
    call.allow()
    return 200, find(call, call.ids["id"])


def update(call: Call) -> Answer:
    """POST /v1/customers/{id}."""
    call.allow(*_FIELDS, "metadata")
    customer = find(call, call.ids["id"])
    before = dict(customer)
    for name in _FIELDS:
        if name in call.params:
            customer[name] = call.string(name, nullable=True)
    customer["metadata"] = call.metadata(customer["metadata"])
    call.emit("customer.updated", customer, before)
    return 200, customer


def _invoice_settings(call: Call) -> dict[str, Any]:
    settings = call.params.get("invoice_settings") or {}
    if not isinstance(settings, dict):
        raise StripeError.invalid_value("invoice_settings", "a hash")
    for key in settings:
        if key != "default_payment_method":
            raise StripeError.unknown_parameter(f"invoice_settings[{key}]")
    return {
        "custom_fields": None,
        "default_payment_method": settings.get("default_payment_method") or None,
        "footer": None,
        "rendering_options": None,
    }


def listing(call: Call) -> Answer:
    """GET /v1/customers."""
    call.allow("limit", "starting_after", "ending_before", "email")
    items = newest_first(call.account.customers.values())
    email = call.string("email")
    if email is not None:
        items = [c for c in items if c["email"] == email]
    return 200, call.page(items, url="/v1/customers", ident=lambda c: c["id"], render=dict)


def find(call: Call, ident: str, param: str = "id") -> dict[str, Any]:
    return call.find(call.account.customers, "customer", ident, param)
