"""`/v1/products` and `/v1/prices`: create, retrieve, update, list."""

from __future__ import annotations

from typing import Any

from devstack.stripe_emulator.accounts import new_id
from devstack.stripe_emulator.calls import Call, newest_first
from devstack.stripe_emulator.errors import StripeError

Answer = tuple[int, dict[str, Any]]
INTERVALS = ("day", "week", "month", "year")


def create_product(call: Call) -> Answer:
    """POST /v1/products."""
    call.allow("id", "name", "description", "active", "metadata")
    product_id = call.string("id") or new_id("prod", 14)
    if product_id in call.account.products:
        raise StripeError.invalid(
            f"Product already exists: '{product_id}'.", param="id", code="resource_already_exists"
        )
    product = _product(call, product_id, str(call.require("name")))
    call.account.products[product_id] = product
    call.emit("product.created", product)
    return 200, product


def _product(call: Call, product_id: str, name: str) -> dict[str, Any]:
    stamp = call.now
    active = call.boolean("active")
    return {
        "id": product_id,
        "object": "product",
        "active": True if active is None else active,
        "created": stamp,
        "default_price": None,
        "description": call.string("description", nullable=True),
        "livemode": False,
        "metadata": call.metadata(),
        "name": name,
        "updated": stamp,
    }


def retrieve_product(call: Call) -> Answer:
    """GET /v1/products/{id}."""
    call.allow()
    return 200, find_product(call, call.ids["id"])


def update_product(call: Call) -> Answer:
    """POST /v1/products/{id}."""
    call.allow("name", "description", "active", "metadata")
    product = find_product(call, call.ids["id"])
    before = dict(product)
    if call.string("name"):
        product["name"] = call.string("name")
    if "description" in call.params:
        product["description"] = call.string("description", nullable=True)
    active = call.boolean("active")
    if active is not None:
        product["active"] = active
    product["metadata"] = call.metadata(product["metadata"])
    product["updated"] = call.now
    call.emit("product.updated", product, before)
    return 200, product


def list_products(call: Call) -> Answer:
    """GET /v1/products."""
    call.allow("limit", "starting_after", "ending_before")
    items = newest_first(call.account.products.values())
    return 200, call.page(items, url="/v1/products", ident=lambda p: p["id"], render=dict)


def find_product(call: Call, ident: str, param: str = "id") -> dict[str, Any]:
    return call.find(call.account.products, "product", ident, param)


def create_price(call: Call) -> Answer:
    """POST /v1/prices: a one-off or recurring price of a product (or of `product_data`)."""
    call.allow(
        "product",
        "product_data",
        "currency",
        "unit_amount",
        "recurring",
        "nickname",
        "lookup_key",
        "active",
        "metadata",
    )
    currency = str(call.require("currency")).lower()
    amount = call.integer("unit_amount", minimum=0)
    if amount is None:
        raise StripeError.missing_parameter("unit_amount")
    product_id = _price_product(call)
    recurring = _recurring(call.params.get("recurring"))
    active = call.boolean("active")
    price_id = new_id("price")
    price: dict[str, Any] = {
        "id": price_id,
        "object": "price",
        "active": True if active is None else active,
        "billing_scheme": "per_unit",
        "created": call.now,
        "currency": currency,
        "livemode": False,
        "lookup_key": call.string("lookup_key"),
        "metadata": call.metadata(),
        "nickname": call.string("nickname", nullable=True),
        "product": product_id,
        "recurring": recurring,
        "tax_behavior": "unspecified",
        "type": "one_time" if recurring is None else "recurring",
        "unit_amount": amount,
        "unit_amount_decimal": str(amount),
    }
    call.account.prices[price_id] = price
    call.emit("price.created", price)
    return 200, price


def _price_product(call: Call) -> str:
    product_id = call.string("product")
    data = call.params.get("product_data")
    if product_id is not None and data is not None:
        raise StripeError.invalid(
            "You may only specify one of these parameters: product, product_data."
        )
    if product_id is not None:
        return str(find_product(call, product_id, "product")["id"])
    if not isinstance(data, dict) or not isinstance(data.get("name"), str) or not data["name"]:
        raise StripeError.missing_parameter("product")
    for key in data:
        if key not in ("name", "metadata"):
            raise StripeError.unknown_parameter(f"product_data[{key}]")
    product = _product(call, new_id("prod", 14), str(data["name"]))
    product["metadata"] = dict(data.get("metadata") or {})
    call.account.products[product["id"]] = product
    return str(product["id"])


def _recurring(spec: Any) -> dict[str, Any] | None:
    if spec is None:
        return None
    if not isinstance(spec, dict):
        raise StripeError.invalid_value("recurring", "a hash")
    for key in spec:
        if key not in ("interval", "interval_count", "usage_type"):
            raise StripeError.unknown_parameter(f"recurring[{key}]")
    interval = spec.get("interval")
    if interval not in INTERVALS:
        raise StripeError.invalid(
            f"Invalid recurring[interval]: must be one of {', '.join(INTERVALS)}",
            param="recurring[interval]",
        )
    try:
        count = int(spec.get("interval_count", 1))
    except ValueError:
        raise StripeError.invalid_value("recurring[interval_count]", "an integer") from None
    return {
        "interval": interval,
        "interval_count": count,
        "meter": None,
        "trial_period_days": None,
        "usage_type": spec.get("usage_type", "licensed"),
    }


def retrieve_price(call: Call) -> Answer:
    """GET /v1/prices/{id}."""
    call.allow()
    return 200, find_price(call, call.ids["id"])


def update_price(call: Call) -> Answer:
    """POST /v1/prices/{id}: only the fields Stripe lets change."""
    call.allow("active", "nickname", "lookup_key", "metadata")
    price = find_price(call, call.ids["id"])
    before = dict(price)
    active = call.boolean("active")
    if active is not None:
        price["active"] = active
    if "nickname" in call.params:
        price["nickname"] = call.string("nickname", nullable=True)
    if "lookup_key" in call.params:
        price["lookup_key"] = call.string("lookup_key", nullable=True)
    price["metadata"] = call.metadata(price["metadata"])
    call.emit("price.updated", price, before)
    return 200, price


def list_prices(call: Call) -> Answer:
    """GET /v1/prices."""
    call.allow("limit", "starting_after", "ending_before", "product", "active")
    items = newest_first(call.account.prices.values())
    product = call.string("product")
    if product is not None:
        items = [price for price in items if price["product"] == product]
    return 200, call.page(items, url="/v1/prices", ident=lambda p: p["id"], render=dict)


def find_price(call: Call, ident: str, param: str = "id") -> dict[str, Any]:
    return call.find(call.account.prices, "price", ident, param)
