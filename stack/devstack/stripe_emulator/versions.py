"""Stripe API versions and the shapes that depend on them.

From `2025-03-31.basil` on, `current_period_start`/`current_period_end` live on each
subscription item and no longer on the subscription; before, only on the subscription. The
emulator keeps both internally and drops one side when rendering.
"""

from __future__ import annotations

import copy
import datetime
import re
from typing import Any

from devstack.stripe_emulator.errors import StripeError

PERIOD_ON_ITEMS_SINCE = "2025-03-31"
DEFAULT_API_VERSION = "2026-10-28.endive"
_FORM = re.compile(r"^(\d{4}-\d{2}-\d{2})(?:\.([a-z]+))?$")
_PERIOD_KEYS = ("current_period_start", "current_period_end")


def check_api_version(value: str, param: str = "api_version") -> str:
    """Return `value` if it is a well-formed Stripe API version, else raise Stripe's 400."""
    match = _FORM.match(value)
    valid = match is not None
    if match is not None:
        try:
            datetime.date.fromisoformat(match.group(1))
        except ValueError:
            valid = False
    if not valid:
        raise StripeError.invalid(
            f"Invalid API version: '{value}'; use a version such as '2025-03-31.basil'.",
            param=param,
            code="api_version_invalid",
        )
    return value


def period_on_items(version: str) -> bool:
    """Whether `version` puts the billing period on subscription items."""
    return version[:10] >= PERIOD_ON_ITEMS_SINCE


def render(obj: dict[str, Any], version: str) -> dict[str, Any]:
    """Render an internal snapshot in the shape of `version` (only subscriptions differ)."""
    shaped = copy.deepcopy(obj)
    if shaped.get("object") != "subscription":
        return shaped
    on_items = period_on_items(version)
    for item in shaped["items"]["data"]:
        for key in _PERIOD_KEYS:
            if not on_items:
                item.pop(key, None)
    if on_items:
        for key in _PERIOD_KEYS:
            shaped.pop(key, None)
    return shaped


def previous_attributes(
    before: dict[str, Any], after: dict[str, Any], version: str
) -> dict[str, Any]:
    """The top-level fields that changed, with their old values, as `version` shows them."""
    old, new = render(before, version), render(after, version)
    return {key: value for key, value in old.items() if new.get(key) != value}
