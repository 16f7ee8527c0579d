"""The emulator's Events API as Stripe's reference documents it: `type` / `types`, `created`
bounds, cursors with `has_more`, newest first, 30 days of retention under the account's own
clock; and `DELETE /v1/subscriptions/{id}` emitting `customer.subscription.deleted`.

Every test sets its account's clock (`/_emulator/accounts/{acct}/clock`): no timestamp here
comes from the wall clock. Each account has a clock of its own, so no other test sees it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import stripe

from devstack.stripe_emulator.fixtures import StripeTarget

pytestmark = pytest.mark.integration

T0 = 1_790_000_000
DAY = 86400
UPDATED = "customer.subscription.updated"
DELETED = "customer.subscription.deleted"
CREATED = "customer.subscription.created"


@dataclass
class History:
    """An account whose subscription was created at T0, updated at T0+10, T0+20, T0+30 and
    canceled at once at T0+40, one event a step; `ids` are those events, oldest first."""

    api_key: str
    client: stripe.StripeClient
    ids: list[str]


@pytest.fixture
def history(stripe_emulator: StripeTarget) -> History:
    emulator = stripe_emulator
    api_key = emulator.new_api_key()
    client = emulator.client(api_key)
    emulator.set_clock(api_key, T0)
    subscription = emulator.create_subscription(api_key)
    for step in (1, 2, 3):
        emulator.set_clock(api_key, T0 + 10 * step)
        client.v1.subscriptions.update(subscription.id, params={"metadata": {"step": str(step)}})
    emulator.set_clock(api_key, T0 + 40)
    client.v1.subscriptions.cancel(subscription.id)
    subscription_events = [
        row
        for row in emulator.event_log(api_key)
        if row["type"].startswith("customer.subscription.")
    ]
    return History(api_key, client, [row["id"] for row in subscription_events])


def _ids(page: Any) -> list[str]:
    return [event.id for event in page.data]


def test_events_are_listed_newest_first_and_filtered_by_type_and_types(history: History) -> None:
    created, first, second, third, deleted = history.ids
    client = history.client
    everything = client.v1.events.list(params={"limit": 100})
    assert everything.has_more is False
    subscription_ids = [e.id for e in everything.data if e.type.startswith("customer.subscr")]
    assert subscription_ids == [deleted, third, second, first, created]
    stamps = [event.created for event in everything.data]
    assert stamps == sorted(stamps, reverse=True)
    both = client.v1.events.list(params={"types": [UPDATED, DELETED]})
    assert _ids(both) == [deleted, third, second, first]
    assert _ids(client.v1.events.list(params={"type": DELETED})) == [deleted]
    wildcard = client.v1.events.list(params={"type": "customer.subscription.*"})
    assert _ids(wildcard) == [deleted, third, second, first, created]
    # `types` names exact types: a wildcard there matches no type.
    assert _ids(client.v1.events.list(params={"types": ["customer.subscription.*"]})) == []


def test_created_bounds_are_inclusive_with_gte_lte_and_exclusive_with_gt_lt(
    history: History,
) -> None:
    _, first, second, third, deleted = history.ids
    client = history.client

    def listed(created: dict[str, int] | int) -> list[str]:
        return _ids(client.v1.events.list(params={"types": [UPDATED, DELETED], "created": created}))

    assert listed({"gte": T0 + 10, "lte": T0 + 30}) == [third, second, first]
    assert listed({"gt": T0 + 10, "lt": T0 + 30}) == [second]
    assert listed({"gte": T0 + 30}) == [deleted, third]
    assert listed({"lte": T0 + 10}) == [first]
    assert listed(T0 + 20) == [second]
    assert listed({"gt": T0 + 40}) == []


def test_cursor_pages_walk_the_whole_list_both_ways(history: History) -> None:
    newest_first = list(reversed(history.ids))
    client = history.client
    query: dict[str, Any] = {"type": "customer.subscription.*", "limit": 2}
    pages = [client.v1.events.list(params=query)]
    while pages[-1].has_more:
        after = pages[-1].data[-1].id
        pages.append(client.v1.events.list(params={**query, "starting_after": after}))
    assert [_ids(page) for page in pages] == [
        newest_first[0:2],
        newest_first[2:4],
        newest_first[4:],
    ]
    assert [page.has_more for page in pages] == [True, True, False]
    # ending_before goes back towards the newest: the `limit` events just before the cursor.
    back = client.v1.events.list(params={**query, "ending_before": newest_first[4]})
    assert (_ids(back), back.has_more) == (newest_first[2:4], True)
    top = client.v1.events.list(params={**query, "ending_before": newest_first[1]})
    assert (_ids(top), top.has_more) == (newest_first[0:1], False)
    walked = [e.id for e in client.v1.events.list(params=query).auto_paging_iter()]
    assert walked == newest_first


def test_a_cursor_outside_the_filter_still_marks_its_place(history: History) -> None:
    created, _, _, third, _ = history.ids
    client = history.client
    # `third` is an update; listing deletions and creations after it gives the creation.
    page = client.v1.events.list(params={"types": [CREATED, DELETED], "starting_after": third})
    assert _ids(page) == [created]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.events.list(params={"starting_after": "evt_nosuchevent"})
    assert raised.value.http_status == 404
    assert raised.value.param == "starting_after"


def test_the_operators_recovery_listing_is_served(history: History) -> None:
    """The request the operator sends to recover a gap: both types, the gap's bounds, only
    events some webhook did not get, 100 a page, continued after a cursor."""
    _, _, second, third, deleted = history.ids
    client = history.client
    gap = {"gte": T0 + 10, "lte": T0 + 40}
    # No endpoint existed, so every event counts as delivered.
    params: dict[str, Any] = {"types": [UPDATED, DELETED], "created": gap, "limit": 100}
    assert _ids(client.v1.events.list(params={**params, "delivery_success": False})) == []
    page = client.v1.events.list(
        params={**params, "delivery_success": True, "limit": 2, "starting_after": deleted}
    )
    assert (_ids(page), page.has_more) == ([third, second], True)


@pytest.mark.parametrize(
    ("query", "param", "fragment"),
    [
        ({"type": UPDATED, "types[0]": DELETED}, "types", "either `type` or `types`"),
        ({f"types[{i}]": UPDATED for i in range(21)}, "types", "at most 20"),
        ({"created[eq]": "1"}, "created[eq]", "unknown parameter"),
        ({"created[gte]": "soon"}, "created[gte]", "Unix timestamp"),
        ({"delivery_success": "maybe"}, "delivery_success", "boolean"),
        ({"limit": "101"}, "limit", "between 1 and 100"),
        ({"limit": "2", "starting_after": "a", "ending_before": "b"}, None, "only specify one"),
    ],
    ids=[
        "type-and-types",
        "21-types",
        "created-eq",
        "created-text",
        "success-text",
        "limit",
        "both-cursors",
    ],
)
def test_what_stripe_refuses_in_a_listing_is_refused(
    stripe_emulator: StripeTarget, query: dict[str, str], param: str | None, fragment: str
) -> None:
    api_key = stripe_emulator.new_api_key()
    answer = httpx.get(
        f"{stripe_emulator.base_url}/v1/events",
        params=query,
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    assert answer.status_code == 400
    error = answer.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error.get("param") == param
    assert fragment.lower() in error["message"].lower()


def test_events_older_than_30_days_are_neither_listed_nor_retrieved(
    stripe_emulator: StripeTarget, history: History
) -> None:
    api_key, client = history.api_key, history.client
    created, first, second, third, deleted = history.ids
    types = {"type": "customer.subscription.*", "limit": 100}
    # Thirty days after the second update it is still there; one second later it is not.
    stripe_emulator.set_clock(api_key, T0 + 20 + 30 * DAY)
    assert _ids(client.v1.events.list(params=types)) == [deleted, third, second]
    assert client.v1.events.retrieve(second).id == second
    stripe_emulator.advance_clock(api_key, 1)
    assert _ids(client.v1.events.list(params=types)) == [deleted, third]
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.events.retrieve(second)
    assert raised.value.http_status == 404
    # A cursor that aged out between two pages still says where the next page starts.
    assert _ids(client.v1.events.list(params={**types, "starting_after": second})) == []
    # The emulator's own log keeps every event, telling which the API still serves.
    log = {row["id"]: row["retained"] for row in stripe_emulator.event_log(api_key)}
    assert [log[i] for i in (created, first, second, third, deleted)] == [
        False,
        False,
        False,
        True,
        True,
    ]


def test_a_cancellation_at_once_emits_deleted_with_the_times_it_ended(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    client = stripe_emulator.client(api_key)
    stripe_emulator.set_clock(api_key, T0)
    subscription = stripe_emulator.create_subscription(api_key)
    period_end = subscription["items"].data[0].current_period_end
    stripe_emulator.set_clock(api_key, T0 + 3600)
    canceled = client.v1.subscriptions.cancel(subscription.id)
    assert (canceled.status, canceled.ended_at, canceled.canceled_at) == (
        "canceled",
        T0 + 3600,
        T0 + 3600,
    )
    (event,) = client.v1.events.list(params={"type": DELETED}).data
    assert event.created == T0 + 3600
    sub = event.data.object
    assert (sub.id, sub.status, sub.ended_at, sub.canceled_at) == (
        subscription.id,
        "canceled",
        T0 + 3600,
        T0 + 3600,
    )
    assert sub.cancel_at_period_end is False
    assert sub["items"].data[0].current_period_end == period_end
    assert "previous_attributes" not in event.data
    # No `.updated` comes with it: an immediate cancellation is only `.deleted`.
    assert _ids(client.v1.events.list(params={"type": UPDATED})) == []
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.subscriptions.cancel(subscription.id)


def test_clocks_are_per_account_and_refuse_bad_commands(stripe_emulator: StripeTarget) -> None:
    traveller, bystander = stripe_emulator.new_api_key(), stripe_emulator.new_api_key()
    stripe_emulator.set_clock(bystander, T0)
    assert stripe_emulator.set_clock(traveller, T0 + 5 * DAY) == T0 + 5 * DAY
    assert stripe_emulator.advance_clock(traveller, 60) == T0 + 5 * DAY + 60
    assert stripe_emulator.clock(traveller) == {"now": T0 + 5 * DAY + 60, "frozen": True}
    assert stripe_emulator.clock(bystander) == {"now": T0, "frozen": True}
    assert stripe_emulator.create_subscription(traveller).created == T0 + 5 * DAY + 60
    assert stripe_emulator.create_subscription(bystander).created == T0
    path = f"{stripe_emulator.base_url}/_emulator/accounts/"
    path += f"{stripe_emulator.account_id(traveller)}/clock"
    for body in ({}, {"now": "soon"}, {"advance": -1}, {"now": 1, "advance": 1}, {"resume": 1}):
        refused = httpx.post(path, json=body, timeout=10)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["message"]
    stripe_emulator.resume_clock(traveller)
    assert stripe_emulator.clock(traveller)["frozen"] is False


def test_an_accounts_rate_limit_is_set_and_lifted_through_the_control_api(
    stripe_emulator: StripeTarget,
) -> None:
    limited, bystander = stripe_emulator.new_api_key(), stripe_emulator.new_api_key()
    stripe_emulator.set_rate_limit(limited, 2)
    answers = [
        httpx.get(f"{stripe_emulator.base_url}/v1/events", auth=(limited, ""), timeout=10)
        for _ in range(4)
    ]
    assert [a.status_code for a in answers].count(429) >= 1
    assert answers[-1].json()["error"]["code"] == "rate_limit"
    unlimited = [
        httpx.get(f"{stripe_emulator.base_url}/v1/events", auth=(bystander, ""), timeout=10)
        for _ in range(4)
    ]
    assert [a.status_code for a in unlimited] == [200] * 4
    stripe_emulator.set_rate_limit(limited, None)
    again = [
        httpx.get(f"{stripe_emulator.base_url}/v1/events", auth=(limited, ""), timeout=10)
        for _ in range(4)
    ]
    assert [a.status_code for a in again] == [200] * 4
    path = f"{stripe_emulator.base_url}/_emulator/accounts/"
    path += f"{stripe_emulator.account_id(limited)}/rate_limit"
    assert httpx.get(path, timeout=10).json() == {"rate": None}
    for body in ({}, {"rate": 0}, {"rate": "fast"}, {"rate": True}):
        refused = httpx.post(path, json=body, timeout=10)
        assert refused.status_code == 400, body
        assert refused.json()["error"]["message"]
