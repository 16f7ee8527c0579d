"""One API call as the resource handlers see it, and the parameter rules Stripe applies."""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from devstack.stripe_emulator.accounts import Account, Event, new_id
from devstack.stripe_emulator.errors import StripeError

Dispatch = Callable[[Account, Event], None]
Found = TypeVar("Found")
_METADATA_KEYS = 50


@dataclass
class Call:
    """The account, decoded parameters, path ids and versions of one `/v1` request; `now` is
    the account's clock as the request runs (every timestamp it writes is that one)."""

    account: Account
    params: dict[str, Any]
    ids: dict[str, str]
    api_version: str
    request_id: str
    idempotency_key: str | None
    dispatch: Dispatch
    now: int

    def allow(self, *names: str) -> None:
        """Refuse any parameter outside `names` (and `expand`, which every call takes)."""
        for name in self.params:
            if name not in names and name != "expand":
                raise StripeError.unknown_parameter(name)

    def find(self, objects: Mapping[str, Found], noun: str, ident: str, param: str = "id") -> Found:
        """The object `ident` of this account, or Stripe's 404 naming `noun` and `param`."""
        found = objects.get(ident)
        if found is None:
            raise StripeError.missing_resource(noun, ident, param)
        return found

    def require(self, name: str) -> Any:
        value = self.params.get(name)
        if value is None or value == "":
            raise StripeError.missing_parameter(name)
        return value

    def string(self, name: str, *, nullable: bool = False) -> str | None:
        """A string parameter; with `nullable`, an empty value means null (Stripe's unset)."""
        value = self.params.get(name)
        if value is None:
            return None
        if not isinstance(value, str):
            raise StripeError.invalid_value(name, "a string")
        if nullable and value == "":
            return None
        return value

    def boolean(self, name: str) -> bool | None:
        value = self.params.get(name)
        if value is None:
            return None
        if value not in ("true", "false"):
            raise StripeError.invalid(
                f"Invalid boolean: {value}", param=name, code="parameter_invalid_boolean"
            )
        return bool(value == "true")

    def integer(self, name: str, *, minimum: int | None = None) -> int | None:
        value = self.params.get(name)
        if value is None:
            return None
        try:
            number = int(value)
        except (TypeError, ValueError):
            raise StripeError.invalid(
                f"Invalid integer: {value}", param=name, code="parameter_invalid_integer"
            ) from None
        if minimum is not None and number < minimum:
            raise StripeError.invalid(
                f"Invalid {name}: must be at least {minimum}",
                param=name,
                code="parameter_invalid_integer",
            )
        return number

    def string_list(self, name: str) -> list[str] | None:
        value = self.params.get(name)
        if value is None:
            return None
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise StripeError.invalid_value(name, "an array of strings")
        return list(value)

    def metadata(self, current: dict[str, str] | None = None) -> dict[str, str]:
        """Merge `metadata` into `current`: an empty value removes a key, `metadata=` all."""
        merged = dict(current or {})
        value = self.params.get("metadata")
        if value is None:
            return merged
        if value == "":
            return {}
        if not isinstance(value, dict):
            raise StripeError.invalid_value("metadata", "a hash of string keys and values")
        for key, text in value.items():
            if not isinstance(text, str):
                raise StripeError.invalid_value(f"metadata[{key}]", "a string")
            if len(key) > 40:
                raise StripeError.invalid(
                    f"Metadata keys can have up to 40 characters; '{key}' has {len(key)}.",
                    param=f"metadata[{key}]",
                )
            if len(text) > 500:
                raise StripeError.invalid(
                    "Metadata values can have up to 500 characters.", param=f"metadata[{key}]"
                )
            if text == "":
                merged.pop(key, None)
            else:
                merged[key] = text
        if len(merged) > _METADATA_KEYS:
            raise StripeError.invalid(
                f"Metadata can have up to {_METADATA_KEYS} keys.", param="metadata"
            )
        return merged

    def emit(
        self, event_type: str, after: dict[str, Any], before: dict[str, Any] | None = None
    ) -> Event:
        """Record an event for this account and start delivering it."""
        event = Event(
            id=new_id("evt"),
            type=event_type,
            created=self.now,
            after=copy.deepcopy(after),
            before=None if before is None else copy.deepcopy(before),
            request_id=self.request_id,
            idempotency_key=self.idempotency_key,
            sequence=len(self.account.events),
        )
        self.account.events[event.id] = event
        self.dispatch(self.account, event)
        return event

    def page(
        self,
        items: Sequence[Any],
        *,
        url: str,
        ident: Callable[[Any], str],
        render: Callable[[Any], dict[str, Any]],
        universe: Sequence[Any] | None = None,
        noun: str = "object",
    ) -> dict[str, Any]:
        """Stripe's cursor pagination over `items` (newest first): limit, starting_after,
        ending_before, has_more.

        A cursor is a place in the whole list, `universe` (in the same order; default
        `items`), of which `items` is the filtered part: a cursor left out by the filters,
        or by the time that passed since the last page, still says where to go on from."""
        limit = self.integer("limit", minimum=1)
        if limit is not None and limit > 100:
            raise StripeError.invalid(
                f"Invalid limit: must be between 1 and 100, not {limit}.",
                param="limit",
                code="parameter_invalid_integer",
            )
        limit = 10 if limit is None else limit
        after, before = self.string("starting_after"), self.string("ending_before")
        if after and before:
            raise StripeError.invalid(
                "You may only specify one of these parameters: ending_before, starting_after."
            )
        whole = items if universe is None else universe
        place = {ident(item): index for index, item in enumerate(whole)}
        cursor = after or before
        if cursor and cursor not in place:
            raise StripeError.missing_resource(
                noun, cursor, "starting_after" if after else "ending_before"
            )
        chosen: Sequence[Any]
        if before:
            newer = [item for item in items if place[ident(item)] < place[before]]
            chosen, has_more = newer[-limit:], len(newer) > limit
        else:
            older: Sequence[Any] = items
            if after:
                older = [item for item in items if place[ident(item)] > place[after]]
            chosen, has_more = older[:limit], len(older) > limit
        return {
            "object": "list",
            "data": [render(item) for item in chosen],
            "has_more": has_more,
            "url": url,
        }


def newest_first(objects: Iterable[Any]) -> list[Any]:
    """Stripe lists newest first; insertion order breaks ties within one second."""
    return list(reversed(list(objects)))
