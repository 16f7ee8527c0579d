"""Unit tests of the emulator's pure parts (form decoding, signatures, shapes, limiter) and
of the fixture's refusal to use emulator controls against Stripe test mode."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import urlencode

import pytest

from devstack.stripe_emulator import versions
from devstack.stripe_emulator.clock import Clock
from devstack.stripe_emulator.errors import StripeError
from devstack.stripe_emulator.fixtures import STRIPE_API, EmulatorOnly, StripeTarget
from devstack.stripe_emulator.forms import parse_form
from devstack.stripe_emulator.limiter import TokenBucket
from devstack.stripe_emulator.signing import signature_header


def test_nested_keys_become_dicts_and_indices_become_lists() -> None:
    raw = urlencode(
        [
            ("url", "https://x.test/h"),
            ("enabled_events[0]", "customer.subscription.updated"),
            ("enabled_events[1]", "invoice.paid"),
            ("metadata[team]", "billing"),
            ("items[0][price]", "price_1"),
            ("items[0][quantity]", "2"),
            ("items[1][price]", "price_2"),
        ]
    )
    assert parse_form(raw) == {
        "url": "https://x.test/h",
        "enabled_events": ["customer.subscription.updated", "invoice.paid"],
        "metadata": {"team": "billing"},
        "items": [{"price": "price_1", "quantity": "2"}, {"price": "price_2"}],
    }


def test_empty_brackets_append_and_group_like_stripe() -> None:
    raw = (
        "enabled_events[]=a.b&enabled_events[]=c.d"
        "&items[][price]=p1&items[][quantity]=1&items[][price]=p2"
    )
    assert parse_form(raw) == {
        "enabled_events": ["a.b", "c.d"],
        "items": [{"price": "p1", "quantity": "1"}, {"price": "p2"}],
    }


def test_blank_values_are_kept_for_unsetting() -> None:
    assert parse_form("metadata[team]=&description=") == {
        "metadata": {"team": ""},
        "description": "",
    }


def test_a_key_that_is_both_value_and_hash_is_refused() -> None:
    with pytest.raises(StripeError) as raised:
        parse_form("metadata=x&metadata[a]=b")
    assert raised.value.status == 400


def test_signature_has_one_v1_per_secret_over_timestamp_dot_body() -> None:
    body = b'{"id": "evt_1"}'
    header = signature_header(body, ["whsec_a", "whsec_b"], 1700000000)
    stamp, first, second = header.split(",")
    assert stamp == "t=1700000000"
    expected = hmac.new(b"whsec_b", b"1700000000." + body, hashlib.sha256).hexdigest()
    assert second == f"v1={expected}"
    assert first != second


def test_subscription_shape_moves_the_period_to_items_from_basil_on() -> None:
    sub = {
        "object": "subscription",
        "current_period_end": 2,
        "current_period_start": 1,
        "items": {"data": [{"current_period_end": 2, "current_period_start": 1}]},
    }
    old = versions.render(sub, "2025-02-24.acacia")
    new = versions.render(sub, "2025-03-31.basil")
    assert old["current_period_end"] == 2
    assert "current_period_end" not in old["items"]["data"][0]
    assert "current_period_end" not in new
    assert new["items"]["data"][0]["current_period_end"] == 2


@pytest.mark.parametrize("bad", ["2025-13-01", "yesterday", "2025-03-31.Basil", ""])
def test_malformed_api_versions_are_refused(bad: str) -> None:
    with pytest.raises(StripeError) as raised:
        versions.check_api_version(bad)
    assert raised.value.param == "api_version"


def test_token_bucket_admits_a_burst_of_rate_then_refuses() -> None:
    bucket = TokenBucket(5)
    admitted = [bucket.admit() for _ in range(6)]
    assert admitted[:5] == [True] * 5
    assert admitted[5] is False


def test_against_stripe_test_mode_the_controls_refuse_before_any_request() -> None:
    target = StripeTarget(STRIPE_API, test_key="sk_test_given")
    assert target.new_api_key() == "sk_test_given"
    assert not target.emulated
    with pytest.raises(EmulatorOnly):
        target.inject_fault("sk_test_given", status=500)
    with pytest.raises(EmulatorOnly):
        target.deliveries("sk_test_given")
    with pytest.raises(EmulatorOnly):
        target.disable_endpoint("we_123")


def test_a_clock_runs_with_the_wall_until_set_then_stands_still() -> None:
    wall = [1_790_000_000.7]
    clock = Clock(wall=lambda: wall[0])
    assert clock.render() == {"now": 1_790_000_000, "frozen": False}
    wall[0] += 10
    assert clock.now() == 1_790_000_010
    clock.set(1_000)
    wall[0] += 10
    assert clock.now() == 1_000
    clock.advance(30 * 86400)
    assert clock.render() == {"now": 1_000 + 30 * 86400, "frozen": True}
    clock.resume()
    assert clock.now() == 1_790_000_020
