"""Pools of distinct, signed `customer.subscription.updated` events of about 3 KB each.

A pool is written as a file: the request path on the first line, then one request per line,
`<Stripe-Signature>\\t<JSON body>`; wrk's Lua script and the Python load generator both read
it. Event ids are unique across every pool a process builds, and each subscription's events
carry increasing `created` times, so a receiver that dedupes and orders events applies every
one of them instead of taking a cheaper path.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import re
import secrets
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

EVENT_TYPE = "customer.subscription.updated"
API_VERSION = "2026-10-28.endive"
TARGET_BYTES = 3 * 1024
DAY = 24 * 3600
# One sequence per process: `created` keeps rising from one pool to the next.
_SEQUENCE = itertools.count(1)
_CREATED_BASE = int(time.time()) - 7 * DAY
_RUN = secrets.token_hex(4)


@dataclass(frozen=True)
class PoolSpec:
    """Who the events are for: the webhook's path, its signing secret, its subscriptions."""

    secret: str
    subscriptions: Sequence[str]
    path: str


def subscription_ids(count: int) -> list[str]:
    """Return `count` subscription ids unique to this benchmark process."""
    return [f"sub_bench{_RUN}{index:06d}" for index in range(count)]


def sign(body: bytes, secret: str, timestamp: int) -> str:
    """Return the `Stripe-Signature` header value Stripe would send for `body`."""
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def _item() -> dict[str, object]:
    return {
        "id": "si_$tag",
        "object": "subscription_item",
        "created": "$start",
        "current_period_start": "$period_start",
        "current_period_end": "$period_end",
        "metadata": {},
        "plan": {
            "id": "$price",
            "object": "plan",
            "active": True,
            "amount": 1900,
            "currency": "usd",
            "interval": "month",
            "interval_count": 1,
            "product": "$product",
            "usage_type": "licensed",
        },
        "price": {
            "id": "$price",
            "object": "price",
            "active": True,
            "currency": "usd",
            "product": "$product",
            "recurring": {"interval": "month", "interval_count": 1, "usage_type": "licensed"},
            "type": "recurring",
            "unit_amount": 1900,
            "unit_amount_decimal": "1900",
        },
        "quantity": 1,
        "subscription": "$subscription",
        "tax_rates": [],
    }


def _template() -> list[str]:
    """Return the event JSON split around its `$name` placeholders: text, name, text, ...

    One json.dumps per process and a join per event keep a 40,000-event pool quick.
    """
    subscription: dict[str, object] = {
        "id": "$subscription",
        "object": "subscription",
        "application": None,
        "billing_cycle_anchor": "$period_start",
        "cancel_at": None,
        "cancel_at_period_end": "$cancel",
        "canceled_at": None,
        "collection_method": "charge_automatically",
        "created": "$start",
        "currency": "usd",
        "customer": "cus_$tag",
        "default_payment_method": "pm_$tag",
        "description": None,
        "discounts": [],
        "items": {
            "object": "list",
            "data": [_item()],
            "has_more": False,
            "total_count": 1,
            "url": "/v1/subscription_items?subscription=$subscription",
        },
        "latest_invoice": "in_bench$serial",
        "livemode": False,
        # Real events carry customer metadata; here it pads every body to the target size.
        "metadata": {"note": "$note"},
        "start_date": "$start",
        "status": "$status",
    }
    event: dict[str, object] = {
        "id": "evt_bench$run$serial",
        "object": "event",
        "api_version": API_VERSION,
        "created": "$created",
        "data": {"object": subscription, "previous_attributes": {"cancel_at_period_end": "$was"}},
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": "req_bench$serial", "idempotency_key": None},
        "type": EVENT_TYPE,
    }
    text = json.dumps(event, separators=(",", ":"))
    # Numbers and booleans are quoted placeholders in the dump: unquote them.
    text = re.sub(r'"\$(start|period_start|period_end|created|cancel|was)"', r"$\1", text)
    return re.split(r"\$([a-z_]+)", text)


_TEMPLATE = _template()


def event_body(subscription: str, serial: int, created: int) -> bytes:
    """Return the JSON of one event for `subscription`, TARGET_BYTES long or a little more."""
    period_end = created + 30 * DAY
    cancel = serial % 5 == 0
    fields: dict[str, object] = {
        "subscription": subscription,
        "tag": subscription[4:],
        "serial": f"{serial:010d}",
        "run": _RUN,
        "created": created,
        "start": period_end - 40 * DAY,
        "period_start": period_end - 30 * DAY,
        "period_end": period_end,
        "cancel": "true" if cancel else "false",
        "was": "false" if cancel else "true",
        "status": "past_due" if serial % 11 == 0 else "active",
        "price": f"price_bench{serial % 7:04d}",
        "product": f"prod_bench{serial % 7:04d}",
        "note": "",
    }
    bare = _fill(fields)
    fields["note"] = "x" * max(0, TARGET_BYTES - len(bare))
    return _fill(fields).encode()


def _fill(fields: dict[str, object]) -> str:
    parts = _TEMPLATE.copy()
    for index in range(1, len(parts), 2):
        parts[index] = str(fields[parts[index]])
    return "".join(parts)


def iter_requests(spec: PoolSpec, size: int, timestamp: int) -> Iterator[tuple[str, bytes]]:
    """Yield `size` (signature, body) pairs, cycling through the subscriptions in order."""
    for index in range(size):
        serial = next(_SEQUENCE)
        subscription = spec.subscriptions[index % len(spec.subscriptions)]
        body = event_body(subscription, serial, _CREATED_BASE + serial)
        yield sign(body, spec.secret, timestamp), body


def write_pool(spec: PoolSpec, size: int, target: Path) -> Path:
    """Write a pool of `size` requests signed now to `target`; return `target`."""
    timestamp = int(time.time())
    with target.open("wb") as out:
        out.write(spec.path.encode() + b"\n")
        for signature, body in iter_requests(spec, size, timestamp):
            out.write(signature.encode() + b"\t" + body + b"\n")
    return target


def read_pool(source: Path) -> tuple[str, list[tuple[str, bytes]]]:
    """Read a pool file back: the request path and its (signature, body) pairs."""
    with source.open("rb") as handle:
        path = handle.readline().decode().strip()
        requests = []
        for line in handle:
            signature, _, body = line.rstrip(b"\n").partition(b"\t")
            requests.append((signature.decode(), body))
    return path, requests
