"""Reading subscription events in both API shapes, and refusing malformed ones."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from stripe_webhook_receiver.events import (
    EventError,
    decode_json,
    parse_envelope,
    parse_subscription,
)
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


# JSON values as Stripe's events hold them: integers within 64 bits, finite floats, any text.
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@given(JSON_VALUES)
def test_decoding_gives_what_json_loads_gives(value: object) -> None:
    for body in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()):
        assert decode_json(body) == json.loads(body)


@pytest.mark.parametrize(
    "body",
    [
        b'\xef\xbb\xbf{"id": "evt_bom"}',  # a UTF-8 byte-order mark
        '{"id": "evt_utf16"}'.encode("utf-16"),
        b'{"id": "evt_\\ud800"}',  # an escaped lone surrogate (refused later, by name)
    ],
)
def test_what_orjson_refuses_is_decoded_by_json_loads(body: bytes) -> None:
    assert decode_json(body) == json.loads(body)


def test_nan_and_infinity_decode_as_json_loads_decodes_them() -> None:
    decoded = decode_json(b'{"a": NaN, "b": Infinity, "c": -Infinity}')
    assert math.isnan(decoded["a"])
    assert decoded["b"] == math.inf
    assert decoded["c"] == -math.inf


def test_a_time_beyond_64_bits_is_refused_with_the_message_json_loads_gave() -> None:
    # orjson reads such an integer as a float where json.loads gave an int: both refused.
    body = b'{"id": "evt_big", "type": "x", "created": 1' + b"0" * 30 + b"}"
    with pytest.raises(EventError) as caught:
        parse_envelope(body)
    assert caught.value.message == "`created` must be a Unix time in seconds or null."
