"""Stripe's form encoding: `metadata[team]=x`, `enabled_events[0]=a`, `items[][price]=p`.

Stripe's clients send every parameter as `application/x-www-form-urlencoded` pairs whose keys
carry the nesting in brackets. This module turns such pairs into nested dicts and lists, the
shape the resource handlers validate.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl

from devstack.stripe_emulator.errors import StripeError

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")
_SEGMENT = re.compile(r"\[([^\[\]]*)\]")


def parse_form(raw: str) -> dict[str, Any]:
    """Decode a query string or form body into Stripe's nested parameters."""
    params: dict[str, Any] = {}
    for key, value in parse_qsl(raw, keep_blank_values=True):
        match = _KEY.match(key)
        if match is None:
            raise StripeError.invalid(f"Invalid parameter name: {key}.", param=key)
        path = [match.group(1), *_SEGMENT.findall(match.group(2))]
        _assign(params, path, value, key)
    return {name: _listify(value) for name, value in params.items()}


def _assign(node: dict[str, Any], path: list[str], value: str, key: str) -> None:
    for depth, segment in enumerate(path[:-1]):
        following = path[depth + 1]
        child = node.get(segment)
        if child is None:
            child = {}
            node[segment] = child
        if not isinstance(child, dict):
            raise StripeError.invalid(
                f"Invalid parameter {key}: it mixes a value and nested keys.", param=key
            )
        if following == "":
            # `items[][price]=a&items[][quantity]=1`: an empty index opens a new element
            # unless the last element lacks the key being set (how Stripe's Ruby-style
            # decoder groups them).
            rest = path[depth + 2 :]
            _assign_leaf_or_nested(_open_appended(child, rest), rest, value, key)
            return
        node = child
    last = path[-1]
    if last == "":
        node[str(len(node))] = value
    else:
        node[last] = value


def _open_appended(array: dict[str, Any], rest: list[str]) -> dict[str, Any]:
    if not rest:
        return array
    if array:
        latest = array[str(len(array) - 1)]
        if isinstance(latest, dict) and rest[0] not in latest:
            return latest
    element: dict[str, Any] = {}
    array[str(len(array))] = element
    return element


def _assign_leaf_or_nested(node: dict[str, Any], rest: list[str], value: str, key: str) -> None:
    if not rest:
        node[str(len(node))] = value
        return
    _assign(node, rest, value, key)


def _listify(value: Any) -> Any:
    """Turn dicts whose keys are all indices (`0`, `1`, ...) into lists, recursively."""
    if not isinstance(value, dict):
        return value
    converted = {name: _listify(child) for name, child in value.items()}
    if converted and all(name.isdigit() for name in converted):
        return [converted[name] for name in sorted(converted, key=int)]
    return converted
