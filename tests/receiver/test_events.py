"""Reading subscription events in both API shapes, and refusing malformed ones."""

from __future__ import annotations

import json

import pytest

from stripe_webhook_receiver.events import EventError, parse_envelope, parse_subscription
from tests.receiver.payloads import ACACIA, BASIL, deleted_event, encode, subscription_event

CREATED = 1_790_000_000


@pytest.mark.parametrize("api_version", [ACACIA, BASIL])
def test_both_shapes_give_the_same_state(api_version: str) -> None:
    event = subscription_event(
        "sub_shape",
        status="trialing",
        created=CREATED,
        period_end=CREATED + 500,
        trial_end=CREATED + 500,
        cancel_at_period_end=True,
        canceled_at=CREATED - 5,
        api_version=api_version,
    )
    where = (
        event["data"]["object"]
        if api_version == ACACIA
        else event["data"]["object"]["items"]["data"][0]
    )
    assert where["current_period_end"] == CREATED + 500
    parsed = parse_subscription(parse_envelope(encode(event)))
    state = parsed.state
    assert parsed.created == CREATED
    assert state.subscription_id == "sub_shape"
    assert state.status == "trialing"
    assert state.current_period_end == CREATED + 500
    assert state.current_period_start == CREATED + 500 - 30 * 86400
    assert state.cancel_at_period_end is True
    assert state.canceled_at == CREATED - 5
    assert state.trial_end == CREATED + 500
    assert state.price_id == "price_monthly"
    assert state.product_id == "prod_premium"
    assert state.customer == "cus_shape"


def test_an_expanded_product_object_gives_its_id() -> None:
    event = subscription_event("sub_exp")
    event["data"]["object"]["items"]["data"][0]["price"]["product"] = {"id": "prod_x", "name": "X"}
    assert parse_subscription(parse_envelope(encode(event))).state.product_id == "prod_x"


def test_ordering_key_prefers_created_then_period_then_status() -> None:
    def key(**kw: object) -> tuple[int, ...]:
        event = subscription_event("sub_o", event_id="evt_same", **kw)  # type: ignore[arg-type]
        return parse_subscription(parse_envelope(encode(event))).order

    assert key(created=CREATED + 1, period_end=CREATED) > key(
        created=CREATED, period_end=CREATED * 2
    )
    assert key(created=CREATED, period_end=CREATED + 2) > key(
        created=CREATED, period_end=CREATED + 1
    )
    same = {"created": CREATED, "period_end": CREATED + 9}
    assert key(status="canceled", **same) > key(status="active", **same)


@pytest.mark.parametrize("api_version", [ACACIA, BASIL])
def test_a_deleted_event_gives_a_canceled_state_that_ended(api_version: str) -> None:
    event = deleted_event(
        "sub_del", ended_at=CREATED, period_end=CREATED + 900, api_version=api_version
    )
    parsed = parse_subscription(parse_envelope(encode(event)))
    assert parsed.state.status == "canceled"
    assert parsed.state.ended_at == CREATED
    assert parsed.state.canceled_at == CREATED
    assert parsed.state.current_period_end == CREATED + 900
    assert (
        parse_subscription(parse_envelope(encode(subscription_event("sub_u")))).state.ended_at
        is None
    )


def test_an_ended_subscription_orders_after_any_state_that_had_not_ended() -> None:
    def key(event: dict[str, object]) -> tuple[int, ...]:
        return parse_subscription(parse_envelope(encode(event))).order

    ended = key(deleted_event("sub_o", ended_at=CREATED, period_end=CREATED + 10))
    # Later by the event's time, by the period end and by nothing at all: all older.
    assert ended > key(subscription_event("sub_o", created=CREATED + 60, period_end=CREATED + 99))
    assert ended > key(subscription_event("sub_o", created=CREATED, period_end=CREATED + 99))
    assert ended > key(subscription_event("sub_o", created=CREATED, status="canceled"))
    # Among ended states the usual key decides.
    later = key(deleted_event("sub_o", ended_at=CREATED, created=CREATED + 1))
    assert later > ended


def test_ended_at_must_be_a_time() -> None:
    event = deleted_event("sub_bad", ended_at=CREATED)
    event["data"]["object"]["ended_at"] = "yesterday"
    with pytest.raises(EventError, match=r"`data\.object\.ended_at`"):
        parse_subscription(parse_envelope(encode(event)))


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        (b"not json", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "not JSON"),
        (b"[]", "`event`"),
        (b'{"id": 5, "type": "x", "created": 1}', "`id`"),
        (b'{"id": "evt", "type": "x"}', "`created`"),
        (b'{"id": "evt", "type": "x", "created": true}', "`created`"),
        (b'{"id": "evt", "type": "x", "created": 1' + b"0" * 5000 + b"}", "not JSON"),
        (b'{"id": "evt_\\ud800", "type": "x", "created": 1}', "surrogate"),
    ],
)
def test_unreadable_envelopes_are_refused(body: bytes, fragment: str) -> None:
    with pytest.raises(EventError) as caught:
        parse_envelope(body)
    assert fragment in caught.value.message


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (("data",), "x", "`data`"),
        (("data", "object"), None, "`data.object`"),
        (("data", "object", "status"), 7, "status"),
        (("data", "object", "id"), None, "id"),
        (("data", "object", "items"), [], "items"),
        (("data", "object", "items", "data"), "x", "items.data"),
        (("data", "object", "cancel_at_period_end"), "yes", "cancel_at_period_end"),
        (("data", "object", "canceled_at"), "yesterday", "canceled_at"),
        (("data", "object", "canceled_at"), 10**30, "canceled_at"),
        (("data", "object", "customer"), 12, "customer"),
        # JSON's `\ud800` decodes to a lone surrogate, which no database can store.
        (("data", "object", "id"), "sub_\ud800", "surrogate"),
        (("data", "object", "status"), "\udfffactive", "surrogate"),
        (("data", "object", "customer"), "cus_\ud800", "customer"),
        (("data", "object", "items", "data", 0, "price", "product"), "prod_\udc00", "product"),
    ],
)
def test_wrong_types_in_the_subscription_are_refused(
    path: tuple[str, ...], value: object, fragment: str
) -> None:
    event = subscription_event("sub_bad")
    target = event
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(EventError) as caught:
        parse_subscription(parse_envelope(json.dumps(event).encode()))
    assert fragment in caught.value.message
