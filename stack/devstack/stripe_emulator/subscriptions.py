"""`/v1/subscriptions`: create, retrieve, update, cancel (DELETE) and list.

Every change emits `customer.subscription.updated` carrying the old values of the changed
fields (`previous_attributes`); an immediate cancel emits `customer.subscription.deleted`
alone (status `canceled`, `ended_at` and `canceled_at` now), and a cancel at period end is an
update, as in Stripe. Timestamps come from the account's clock, but nothing happens as it
moves: periods never renew and trials end only when `trial_end=now` is sent.
"""

from __future__ import annotations

import calendar
import copy
import datetime
from typing import Any

from devstack.stripe_emulator import catalog, customers, versions
from devstack.stripe_emulator.accounts import new_id
from devstack.stripe_emulator.calls import Call, newest_first
from devstack.stripe_emulator.errors import StripeError

Answer = tuple[int, dict[str, Any]]
_IGNORED = ("payment_behavior", "proration_behavior", "expand")
_STATUSES = ("active", "trialing", "canceled", "past_due", "unpaid", "incomplete", "all")


def create(call: Call) -> Answer:
    """POST /v1/subscriptions."""
    call.allow(
        "customer",
        "items",
        "metadata",
        "trial_end",
        "trial_period_days",
        "cancel_at_period_end",
        "description",
        *_IGNORED,
    )
    customer = customers.find(call, str(call.require("customer")), "customer")
    specs = call.params.get("items")
    if not isinstance(specs, list) or not specs:
        raise StripeError.missing_parameter("items")
    stamp = call.now
    sub_id = new_id("sub")
    items = [_new_item(call, sub_id, spec, index, stamp) for index, spec in enumerate(specs)]
    trial_end = _trial_end(call, stamp)
    days = call.integer("trial_period_days", minimum=1)
    if trial_end is None and days is not None:
        trial_end = stamp + days * 86400
    sub: dict[str, Any] = {
        "id": sub_id,
        "object": "subscription",
        "application": None,
        "billing_cycle_anchor": stamp,
        "cancel_at": None,
        "cancel_at_period_end": False,
        "canceled_at": None,
        "cancellation_details": {"comment": None, "feedback": None, "reason": None},
        "collection_method": "charge_automatically",
        "created": stamp,
        "currency": items[0]["price"]["currency"],
        "customer": customer["id"],
        "days_until_due": None,
        "default_payment_method": None,
        "description": call.string("description", nullable=True),
        "discounts": [],
        "ended_at": None,
        "items": {
            "object": "list",
            "data": items,
            "has_more": False,
            "total_count": len(items),
            "url": f"/v1/subscription_items?subscription={sub_id}",
        },
        "latest_invoice": None,
        "livemode": False,
        "metadata": call.metadata(),
        "start_date": stamp,
        "status": "active",
        "trial_end": None,
        "trial_start": None,
    }
    _start_period(sub, stamp, trial_end)
    if call.boolean("cancel_at_period_end"):
        _schedule_cancel(sub, stamp)
    call.account.subscriptions[sub_id] = sub
    call.emit("customer.subscription.created", sub)
    return 200, versions.render(sub, call.api_version)


def retrieve(call: Call) -> Answer:
    """GET /v1/subscriptions/{id}."""
    call.allow()
    return 200, versions.render(_find(call), call.api_version)


def update(call: Call) -> Answer:
    """POST /v1/subscriptions/{id}."""
    call.allow(
        "items",
        "metadata",
        "trial_end",
        "cancel_at_period_end",
        "description",
        "cancellation_details",
        *_IGNORED,
    )
    sub = _find(call)
    before = copy.deepcopy(sub)
    stamp = call.now
    if sub["status"] == "canceled" and set(call.params) - {"metadata", "cancellation_details"}:
        raise StripeError.invalid(
            "A canceled subscription can only update its `metadata` and `cancellation_details`."
        )
    if "items" in call.params:
        _update_items(call, sub, stamp)
    if "description" in call.params:
        sub["description"] = call.string("description", nullable=True)
    sub["metadata"] = call.metadata(sub["metadata"])
    _update_details(call, sub)
    trial_end = _trial_end(call, stamp)
    if trial_end is not None:
        _start_period(sub, stamp, trial_end if trial_end > stamp else None)
    cancel = call.boolean("cancel_at_period_end")
    if cancel is True and not sub["cancel_at_period_end"]:
        _schedule_cancel(sub, stamp)
    elif cancel is False and sub["cancel_at_period_end"]:
        sub.update(cancel_at=None, cancel_at_period_end=False, canceled_at=None)
        sub["cancellation_details"]["reason"] = None
    if sub != before:
        call.emit("customer.subscription.updated", sub, before)
    return 200, versions.render(sub, call.api_version)


def cancel(call: Call) -> Answer:
    """DELETE /v1/subscriptions/{id}: cancel at once."""
    call.allow("invoice_now", "prorate", "cancellation_details")
    sub = _find(call)
    if sub["status"] == "canceled":
        raise StripeError.invalid(
            f"Subscription '{sub['id']}' is already canceled; create a new subscription instead.",
            code="resource_missing",
        )
    stamp = call.now
    _update_details(call, sub)
    sub.update(status="canceled", ended_at=stamp, cancel_at_period_end=False)
    sub["canceled_at"] = sub["canceled_at"] or stamp
    if sub["cancellation_details"]["reason"] is None:
        sub["cancellation_details"]["reason"] = "cancellation_requested"
    call.emit("customer.subscription.deleted", sub)
    return 200, versions.render(sub, call.api_version)


def listing(call: Call) -> Answer:
    """GET /v1/subscriptions (without `status`, canceled ones are left out, as in Stripe)."""
    call.allow("limit", "starting_after", "ending_before", "customer", "price", "status")
    status = call.string("status")
    if status is not None and status not in _STATUSES:
        raise StripeError.invalid_value("status", "one of " + ", ".join(_STATUSES))
    items = newest_first(call.account.subscriptions.values())
    if status is None:
        items = [s for s in items if s["status"] != "canceled"]
    elif status != "all":
        items = [s for s in items if s["status"] == status]
    customer = call.string("customer")
    if customer is not None:
        items = [s for s in items if s["customer"] == customer]
    price = call.string("price")
    if price is not None:
        items = [s for s in items if any(i["price"]["id"] == price for i in s["items"]["data"])]
    return 200, call.page(
        items,
        url="/v1/subscriptions",
        ident=lambda s: s["id"],
        render=lambda s: versions.render(s, call.api_version),
    )


def _find(call: Call) -> dict[str, Any]:
    return call.find(call.account.subscriptions, "subscription", call.ids["id"])


def _new_item(call: Call, sub_id: str, spec: Any, index: int, stamp: int) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise StripeError.invalid_value(f"items[{index}]", "a hash")
    for key in spec:
        if key not in ("price", "quantity", "metadata"):
            raise StripeError.unknown_parameter(f"items[{index}][{key}]")
    price_id = spec.get("price")
    if not price_id:
        raise StripeError.missing_parameter(f"items[{index}][price]")
    return {
        "id": new_id("si", 14),
        "object": "subscription_item",
        "created": stamp,
        "current_period_end": None,
        "current_period_start": None,
        "discounts": [],
        "metadata": dict(spec.get("metadata") or {}),
        "price": copy.deepcopy(_recurring_price(call, str(price_id), index)),
        "quantity": _quantity(spec.get("quantity", "1"), index),
        "subscription": sub_id,
        "tax_rates": [],
    }


def _recurring_price(call: Call, price_id: str, index: int) -> dict[str, Any]:
    price = catalog.find_price(call, price_id, f"items[{index}][price]")
    if price["recurring"] is None:
        raise StripeError.invalid(
            f"The price '{price_id}' is a one-time price; a subscription item needs a price "
            "with `recurring` set.",
            param=f"items[{index}][price]",
        )
    return price


def _quantity(value: Any, index: int) -> int:
    try:
        quantity = int(value)
    except (TypeError, ValueError):
        raise StripeError.invalid_value(f"items[{index}][quantity]", "an integer") from None
    if quantity < 0:
        raise StripeError.invalid_value(f"items[{index}][quantity]", "zero or more")
    return quantity


def _update_items(call: Call, sub: dict[str, Any], stamp: int) -> None:
    specs = call.params["items"]
    if not isinstance(specs, list):
        raise StripeError.invalid_value("items", "an array of hashes")
    data: list[dict[str, Any]] = sub["items"]["data"]
    for index, spec in enumerate(specs):
        if not isinstance(spec, dict):
            raise StripeError.invalid_value(f"items[{index}]", "a hash")
        item_id = spec.get("id")
        if item_id is None:
            item = _new_item(call, sub["id"], spec, index, stamp)
            item["current_period_start"] = sub["current_period_start"]
            item["current_period_end"] = sub["current_period_end"]
            data.append(item)
            continue
        matches = [item for item in data if item["id"] == item_id]
        if not matches:
            raise StripeError.missing_resource(
                "subscription item", str(item_id), f"items[{index}][id]"
            )
        for key in spec:
            if key not in ("id", "price", "quantity", "metadata", "deleted"):
                raise StripeError.unknown_parameter(f"items[{index}][{key}]")
        item = matches[0]
        if spec.get("deleted") == "true":
            data.remove(item)
            continue
        if spec.get("price"):
            item["price"] = copy.deepcopy(_recurring_price(call, str(spec["price"]), index))
        if "quantity" in spec:
            item["quantity"] = _quantity(spec["quantity"], index)
        if isinstance(spec.get("metadata"), dict):
            item["metadata"].update(spec["metadata"])
    if not data:
        raise StripeError.invalid("A subscription must keep at least one item.", param="items")
    sub["items"]["total_count"] = len(data)


def _update_details(call: Call, sub: dict[str, Any]) -> None:
    details = call.params.get("cancellation_details")
    if details is None:
        return
    if not isinstance(details, dict):
        raise StripeError.invalid_value("cancellation_details", "a hash")
    for key, value in details.items():
        if key not in ("comment", "feedback"):
            raise StripeError.unknown_parameter(f"cancellation_details[{key}]")
        sub["cancellation_details"][key] = value or None


def _trial_end(call: Call, stamp: int) -> int | None:
    value = call.params.get("trial_end")
    if value is None:
        return None
    if value == "now":
        return stamp
    try:
        return int(value)
    except (TypeError, ValueError):
        raise StripeError.invalid_value("trial_end", "'now' or a Unix timestamp") from None


def _start_period(sub: dict[str, Any], stamp: int, trial_end: int | None) -> None:
    """Begin a period at `stamp`: a trial up to `trial_end`, or one billing interval."""
    if trial_end is not None:
        sub.update(status="trialing", trial_start=stamp, trial_end=trial_end)
        end = trial_end
    else:
        if sub["status"] == "trialing":
            sub["trial_end"] = stamp
        sub["status"] = "active"
        recurring = sub["items"]["data"][0]["price"]["recurring"]
        end = _advance(stamp, recurring["interval"], recurring["interval_count"])
    sub.update(current_period_start=stamp, current_period_end=end)
    for item in sub["items"]["data"]:
        item.update(current_period_start=stamp, current_period_end=end)
    if sub["cancel_at_period_end"]:
        sub["cancel_at"] = end


def _schedule_cancel(sub: dict[str, Any], stamp: int) -> None:
    sub.update(cancel_at_period_end=True, cancel_at=sub["current_period_end"], canceled_at=stamp)
    sub["cancellation_details"]["reason"] = "cancellation_requested"


def _advance(stamp: int, interval: str, count: int) -> int:
    moment = datetime.datetime.fromtimestamp(stamp, tz=datetime.UTC)
    if interval in ("day", "week"):
        days = count * (7 if interval == "week" else 1)
        return stamp + days * 86400
    months = count * (12 if interval == "year" else 1)
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())
