"""The recovery benchmark's floor, its probe events and the receiver's delivery window."""

from __future__ import annotations

import hmac
import json
import math
import sqlite3
from contextlib import closing
from hashlib import sha256
from pathlib import Path

import pytest
from benchmarks.recovery_bench import (
    delivery_window,
    floor_seconds,
    list_floor_seconds,
    probe_events,
    signed,
)

from stripe_webhook_operator.secret_value import SecretValue


def test_listing_takes_one_call_per_full_or_partial_page_at_the_rate_limit() -> None:
    assert list_floor_seconds(10_000, 25.0) == 4.0
    assert list_floor_seconds(10_001, 25.0) == pytest.approx(101 / 25)
    assert list_floor_seconds(1, 25.0) == pytest.approx(1 / 25)
    assert list_floor_seconds(0, 25.0) == 0.0


def test_the_floor_adds_the_deliveries_at_the_receivers_rate_to_the_listing() -> None:
    assert floor_seconds(10_000, 25.0, 500.0) == pytest.approx(4.0 + 20.0)
    assert floor_seconds(10_000, 25.0, 0.0) == float("inf")


def test_probe_events_are_fresh_copies_with_ids_of_their_own() -> None:
    template = {"id": "evt_1", "created": 5, "data": {"object": {"id": "sub_1", "items": [1]}}}
    copies = probe_events(template, 3, 100)
    assert len({event["id"] for event in copies}) == 3
    assert "evt_1" not in {event["id"] for event in copies}
    assert {event["created"] for event in copies} == {100}
    copies[0]["data"]["object"]["items"].append(2)
    assert template["data"]["object"]["items"] == [1]
    assert copies[1]["data"]["object"] == {"id": "sub_1", "items": [1]}


def test_a_probe_event_is_signed_as_stripe_signs_it() -> None:
    body, header = signed({"id": "evt_x", "created": 7}, SecretValue("whsec_test"), 1000)
    assert json.loads(body) == {"id": "evt_x", "created": 7}
    expected = hmac.new(b"whsec_test", b"1000." + body, sha256).hexdigest()
    assert header == f"t=1000,v1={expected}"


def test_the_delivery_window_spans_the_named_events_of_the_webhook(tmp_path: Path) -> None:
    database = tmp_path / "receiver.db"
    with closing(sqlite3.connect(database)) as db:
        db.execute("CREATE TABLE deliveries (webhook TEXT, event_id TEXT, received_at INTEGER)")
        db.executemany(
            "INSERT INTO deliveries VALUES (?, ?, ?)",
            [
                ("ns/shop", "evt_a", 2_000),
                ("ns/shop", "evt_b", 5_500),
                ("ns/shop", "evt_other", 9_000),
                ("ns/else", "evt_a", 1_000),
            ],
        )
        db.commit()
    assert delivery_window(database, "ns/shop", {"evt_a", "evt_b"}) == (2.0, 5.5)
    first, last = delivery_window(database, "ns/shop", {"evt_none"})
    assert math.isnan(first)  # nothing delivered
    assert math.isnan(last)
