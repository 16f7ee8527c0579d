"""Event pools: distinct, correctly signed, about 3 KB, ordered per subscription."""

from __future__ import annotations

import json
from pathlib import Path

import stripe
from benchmarks.events import TARGET_BYTES, PoolSpec, read_pool, subscription_ids, write_pool


def _pool(tmp_path: Path, size: int = 40) -> tuple[PoolSpec, str, list[tuple[str, bytes]]]:
    spec = PoolSpec("whsec_smoke", subscription_ids(4), "/webhooks/bench/shop")
    path, requests = read_pool(write_pool(spec, size, tmp_path / "pool.txt"))
    return spec, path, requests


def test_every_event_verifies_with_stripes_own_check(tmp_path: Path) -> None:
    spec, path, requests = _pool(tmp_path)
    for signature, body in requests:
        stripe.WebhookSignature.verify_header(body, signature, spec.secret, tolerance=300)
    assert path == "/webhooks/bench/shop"
    assert len(requests) == 40


def test_events_are_distinct_subscription_updates_of_about_3kb(tmp_path: Path) -> None:
    _, _, requests = _pool(tmp_path)
    events = [json.loads(body) for _, body in requests]
    assert len({event["id"] for event in events}) == len(events)
    assert {event["type"] for event in events} == {"customer.subscription.updated"}
    assert all(TARGET_BYTES <= len(body) <= TARGET_BYTES + 64 for _, body in requests)


def test_each_subscriptions_events_are_newer_than_the_last(tmp_path: Path) -> None:
    _, _, first = _pool(tmp_path)
    _, _, second = _pool(tmp_path)
    last: dict[str, int] = {}
    for _, body in first + second:
        event = json.loads(body)
        subscription = event["data"]["object"]["id"]
        assert event["created"] > last.get(subscription, 0)
        last[subscription] = event["created"]
    assert len(last) == 4
