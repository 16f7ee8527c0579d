"""Webhook deliveries from the Stripe emulator: signed like Stripe (checked with stripe-python's
own verifier), shaped per the endpoint's API version, retried after failures on a schedule that
ends, sent only to endpoints enabled and wanting the event when it was created (never later),
and what `delivery_success` and `pending_webhooks` then say."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import stripe
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devstack.processes import free_port
from devstack.stripe_emulator.fixtures import StripeTarget, own_emulator

pytestmark = pytest.mark.integration

UPDATED = "customer.subscription.updated"


@dataclass
class Received:
    path: str
    body: bytes
    signature: str


@dataclass
class Sink:
    """A loopback HTTP server that records each POST and answers from a per-path script."""

    port: int
    script: dict[str, list[int]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def receive(self, request: Request) -> Response:
        path = request.url.path
        self.received.append(
            Received(path, await request.body(), request.headers.get("stripe-signature", ""))
        )
        answers = self.script.get(path) or [200]
        status = answers.pop(0) if len(answers) > 1 else answers[0]
        return Response(status_code=status)


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    server_sink = Sink(free_port())
    app = Starlette(routes=[Route("/{path:path}", server_sink.receive, methods=["POST"])])
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=server_sink.port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "the test sink did not start"
        time.sleep(0.02)
    try:
        yield server_sink
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _endpoint(
    emulator: StripeTarget, api_key: str, url: str, **params: Any
) -> stripe.WebhookEndpoint:
    return emulator.client(api_key).v1.webhook_endpoints.create(
        params={"url": url, "enabled_events": [UPDATED], **params}
    )


def _statuses(attempts: list[dict[str, Any]], endpoint: str) -> list[int | None]:
    return [a["status"] for a in attempts if a["endpoint"] == endpoint]


def test_update_is_delivered_signed_to_enabled_endpoints_only(
    stripe_emulator: StripeTarget, sink: Sink
) -> None:
    api_key = stripe_emulator.new_api_key()
    enabled = _endpoint(stripe_emulator, api_key, sink.url("/enabled"))
    disabled = _endpoint(stripe_emulator, api_key, sink.url("/disabled"))
    stripe_emulator.client(api_key).v1.webhook_endpoints.update(
        disabled.id, params={"disabled": True}
    )
    other_type = stripe_emulator.client(api_key).v1.webhook_endpoints.create(
        params={"url": sink.url("/other"), "enabled_events": ["invoice.paid"]}
    )
    sub = stripe_emulator.create_subscription(api_key)
    stripe_emulator.client(api_key).v1.subscriptions.update(
        sub.id, params={"metadata": {"plan": "gold"}}
    )
    attempts = stripe_emulator.wait_for_deliveries(api_key, lambda rows: len(rows) >= 1)
    assert _statuses(attempts, enabled.id) == [200]
    delivered = [r for r in sink.received if r.path == "/enabled"]
    assert len(delivered) == 1
    event = stripe.Webhook.construct_event(
        delivered[0].body, delivered[0].signature, enabled.secret
    )
    assert event.type == UPDATED
    assert event.id == attempts[0]["event"]
    assert event.data.object.id == sub.id
    assert event.data.object.metadata.to_dict() == {"plan": "gold"}
    assert event.data.previous_attributes.to_dict() == {"metadata": {}}
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(delivered[0].body, delivered[0].signature, "whsec_wrong")
    settled = stripe_emulator.wait_until_settled(api_key)
    assert _statuses(settled, disabled.id) == []
    assert _statuses(settled, other_type.id) == []
    assert not [r for r in sink.received if r.path in ("/disabled", "/other")]
    listed = stripe_emulator.client(api_key).v1.events.retrieve(event.id)
    assert listed.type == UPDATED


def test_delivery_is_retried_after_a_500_until_a_200(
    stripe_emulator: StripeTarget, sink: Sink
) -> None:
    api_key = stripe_emulator.new_api_key()
    sink.script["/flaky"] = [500, 200]
    endpoint = _endpoint(stripe_emulator, api_key, sink.url("/flaky"))
    sub = stripe_emulator.create_subscription(api_key)
    stripe_emulator.client(api_key).v1.subscriptions.update(
        sub.id, params={"cancel_at_period_end": True}
    )
    attempts = stripe_emulator.wait_for_deliveries(
        api_key, lambda rows: 200 in _statuses(rows, endpoint.id)
    )
    assert _statuses(attempts, endpoint.id) == [500, 200]
    assert [a["attempt"] for a in attempts] == [1, 2]
    assert attempts[0]["event"] == attempts[1]["event"]
    assert attempts[0]["time"] < attempts[1]["time"]
    bodies = [r for r in sink.received if r.path == "/flaky"]
    for received in bodies:
        event = stripe.Webhook.construct_event(received.body, received.signature, endpoint.secret)
        assert event.data.previous_attributes.cancel_at_period_end is False


def test_delivery_to_a_closed_port_is_recorded_without_status(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    endpoint = _endpoint(stripe_emulator, api_key, f"http://127.0.0.1:{free_port()}/gone")
    sub = stripe_emulator.create_subscription(api_key)
    stripe_emulator.client(api_key).v1.subscriptions.update(sub.id, params={"description": "x"})
    attempts = stripe_emulator.wait_for_deliveries(api_key, lambda rows: len(rows) >= 2)
    assert _statuses(attempts, endpoint.id)[:2] == [None, None]
    assert attempts[0]["error"]
    stripe_emulator.delete_endpoint_in_dashboard(endpoint.id)
    with pytest.raises(stripe.InvalidRequestError):
        stripe_emulator.client(api_key).v1.webhook_endpoints.retrieve(endpoint.id)


def test_payload_shape_follows_the_endpoint_api_version(
    stripe_emulator: StripeTarget, sink: Sink
) -> None:
    api_key = stripe_emulator.new_api_key()
    old = _endpoint(stripe_emulator, api_key, sink.url("/acacia"), api_version="2024-12-18.acacia")
    new = _endpoint(stripe_emulator, api_key, sink.url("/basil"), api_version="2025-03-31.basil")
    sub = stripe_emulator.create_subscription(api_key, trial_end=2_000_000_000)
    stripe_emulator.client(api_key).v1.subscriptions.update(sub.id, params={"trial_end": "now"})
    stripe_emulator.wait_for_deliveries(api_key, lambda rows: len(rows) == 2)
    by_path = {r.path: r for r in sink.received if r.path in ("/acacia", "/basil")}
    acacia = stripe.Webhook.construct_event(
        by_path["/acacia"].body, by_path["/acacia"].signature, old.secret
    )
    basil = stripe.Webhook.construct_event(
        by_path["/basil"].body, by_path["/basil"].signature, new.secret
    )
    assert acacia.api_version == "2024-12-18.acacia"
    assert basil.api_version == "2025-03-31.basil"
    assert acacia.id == basil.id
    old_sub, new_sub = acacia.data.object, basil.data.object
    assert "current_period_end" in old_sub
    assert "current_period_end" not in old_sub["items"].data[0]
    assert "current_period_end" not in new_sub
    assert new_sub["items"].data[0].current_period_end == old_sub.current_period_end
    assert acacia.data.previous_attributes.current_period_end == 2_000_000_000
    assert acacia.data.previous_attributes.status == "trialing"
    assert "current_period_end" not in basil.data.previous_attributes
    old_items = basil.data.previous_attributes["items"].data
    assert old_items[0].current_period_end == 2_000_000_000


def test_rolled_secret_signs_with_two_v1_entries_until_the_old_expires(
    stripe_emulator: StripeTarget, sink: Sink
) -> None:
    api_key = stripe_emulator.new_api_key()
    endpoint = _endpoint(stripe_emulator, api_key, sink.url("/rolled"))
    new_secret = stripe_emulator.roll_secret(endpoint.id, expires_in=3600)
    sub = stripe_emulator.create_subscription(api_key)
    stripe_emulator.client(api_key).v1.subscriptions.update(sub.id, params={"metadata": {"a": "b"}})
    stripe_emulator.wait_for_deliveries(api_key, lambda rows: len(rows) == 1)
    received = next(r for r in sink.received if r.path == "/rolled")
    assert received.signature.count("v1=") == 2
    for secret in (endpoint.secret, new_secret):
        stripe.Webhook.construct_event(received.body, received.signature, secret)


def test_a_burst_of_updates_is_delivered_once_each(
    stripe_emulator: StripeTarget, sink: Sink
) -> None:
    api_key = stripe_emulator.new_api_key()
    endpoint = _endpoint(stripe_emulator, api_key, sink.url("/burst"))
    client = stripe_emulator.client(api_key)
    subs = [stripe_emulator.create_subscription(api_key) for _ in range(3)]
    for round_number in range(10):
        for sub in subs:
            client.v1.subscriptions.update(
                sub.id, params={"metadata": {"round": str(round_number)}}
            )
    attempts = stripe_emulator.wait_until_settled(api_key)
    assert len(attempts) == 30
    assert {a["status"] for a in attempts} == {200}
    assert len({a["event"] for a in attempts}) == 30
    bodies = [r for r in sink.received if r.path == "/burst"]
    events = [stripe.Webhook.construct_event(r.body, r.signature, endpoint.secret) for r in bodies]
    assert sorted(e.id for e in events) == sorted(a["event"] for a in attempts)
    rounds = {(e.data.object.id, e.data.object.metadata["round"]) for e in events}
    assert len(rounds) == 30


# --- Stripe's delivery rules that recovery stands on, on an emulator with a fast schedule ----

# Three retries, as Stripe's test mode makes; the last wait is long enough to look at a
# delivery still pending, and to disable or re-enable its endpoint, before the retry.
FAST_SCHEDULE = (0.1, 0.2, 2.5)
DELETED = "customer.subscription.deleted"


@pytest.fixture(scope="module")
def fast_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeTarget]:
    workdir = Path(tmp_path_factory.mktemp("fast-emulator"))
    with own_emulator(workdir, retry_schedule=FAST_SCHEDULE) as target:
        yield target


def _update(emulator: StripeTarget, api_key: str, sub: str, step: str) -> str:
    """Update the subscription; return the id of the `.updated` event it emitted."""
    client = emulator.client(api_key)
    client.v1.subscriptions.update(sub, params={"metadata": {"step": step}})
    (event,) = client.v1.events.list(params={"type": UPDATED, "limit": 1}).data
    return str(event.id)


def _failing(
    emulator: StripeTarget, sink: Sink, path: str, answers: list[int]
) -> tuple[str, stripe.WebhookEndpoint, str]:
    """An endpoint at `path` answering `answers` in turn (the last one forever after) and an
    update: return the API key, the endpoint and the event once its third attempt was made,
    with the last retry still to come."""
    api_key = emulator.new_api_key()
    sink.script[path] = answers
    endpoint = _endpoint(emulator, api_key, sink.url(path))
    sub = emulator.create_subscription(api_key)
    event_id = _update(emulator, api_key, sub.id, "1")
    emulator.wait_for_deliveries(api_key, lambda rows: len(rows) == 3)
    return api_key, endpoint, event_id


def _listed(emulator: StripeTarget, api_key: str, delivered: bool) -> list[str]:
    page = emulator.client(api_key).v1.events.list(
        params={"types": [UPDATED, DELETED], "delivery_success": delivered, "limit": 100}
    )
    return [event.id for event in page.data]


def test_retries_end_after_the_schedule_and_the_event_is_listed_undelivered(
    fast_emulator: StripeTarget, sink: Sink
) -> None:
    api_key, endpoint, event_id = _failing(fast_emulator, sink, "/down", [500])
    # Between the third attempt and the last retry the delivery is still pending.
    assert _listed(fast_emulator, api_key, delivered=False) == [event_id]
    (row,) = [r for r in fast_emulator.event_log(api_key) if r["id"] == event_id]
    assert row["deliveries"] == {endpoint.id: "pending"}
    attempts = fast_emulator.wait_until_settled(api_key)
    assert [a["attempt"] for a in attempts] == [1, 2, 3, 4]  # the first and three retries
    assert _statuses(attempts, endpoint.id) == [500, 500, 500, 500]
    (row,) = [r for r in fast_emulator.event_log(api_key) if r["id"] == event_id]
    assert row["deliveries"] == {endpoint.id: "failed"}
    assert fast_emulator.client(api_key).v1.events.retrieve(event_id).pending_webhooks == 1
    assert _listed(fast_emulator, api_key, delivered=False) == [event_id]
    assert _listed(fast_emulator, api_key, delivered=True) == []


def test_delivery_success_follows_every_webhook_the_event_went_to(
    fast_emulator: StripeTarget, sink: Sink
) -> None:
    api_key = fast_emulator.new_api_key()
    sink.script["/broken"] = [500]
    good = _endpoint(fast_emulator, api_key, sink.url("/good"))
    broken = _endpoint(fast_emulator, api_key, sink.url("/broken"))
    sub = fast_emulator.create_subscription(api_key)
    half = _update(fast_emulator, api_key, sub.id, "1")
    fast_emulator.wait_until_settled(api_key)
    fast_emulator.client(api_key).v1.webhook_endpoints.delete(broken.id)
    whole = _update(fast_emulator, api_key, sub.id, "2")
    fast_emulator.wait_until_settled(api_key)
    assert _listed(fast_emulator, api_key, delivered=True) == [whole]
    assert _listed(fast_emulator, api_key, delivered=False) == [half]
    log = {row["id"]: row["deliveries"] for row in fast_emulator.event_log(api_key)}
    assert log[half] == {good.id: "succeeded", broken.id: "failed"}
    assert log[whole] == {good.id: "succeeded"}
    assert fast_emulator.client(api_key).v1.events.retrieve(whole).pending_webhooks == 0


def test_events_created_while_an_endpoint_is_disabled_never_reach_it(
    fast_emulator: StripeTarget, sink: Sink
) -> None:
    api_key = fast_emulator.new_api_key()
    client = fast_emulator.client(api_key)
    endpoint = _endpoint(fast_emulator, api_key, sink.url("/paused"))
    sub = fast_emulator.create_subscription(api_key)
    client.v1.webhook_endpoints.update(endpoint.id, params={"disabled": True})
    while_disabled = _update(fast_emulator, api_key, sub.id, "1")
    fast_emulator.disable_endpoint(endpoint.id)  # as Stripe disables it: the same rule
    also_disabled = _update(fast_emulator, api_key, sub.id, "2")
    client.v1.webhook_endpoints.update(endpoint.id, params={"disabled": False})
    after = _update(fast_emulator, api_key, sub.id, "3")
    attempts = fast_emulator.wait_until_settled(api_key)
    assert [(a["event"], a["status"]) for a in attempts] == [(after, 200)]
    delivered = [r for r in sink.received if r.path == "/paused"]
    assert [
        stripe.Webhook.construct_event(r.body, r.signature, endpoint.secret).id for r in delivered
    ] == [after]
    log = {row["id"]: row["deliveries"] for row in fast_emulator.event_log(api_key)}
    assert log[while_disabled] == log[also_disabled] == {}
    # Sent to no webhook, they count as delivered: only recovery can bring them.
    assert set(_listed(fast_emulator, api_key, delivered=True)) == {
        while_disabled,
        also_disabled,
        after,
    }


def test_nothing_is_sent_while_disabled_and_a_disabled_retry_ends_the_delivery(
    fast_emulator: StripeTarget, sink: Sink
) -> None:
    api_key, endpoint, event_id = _failing(fast_emulator, sink, "/failing-then-off", [500])
    fast_emulator.disable_endpoint(endpoint.id)
    retrieved = fast_emulator.client(api_key).v1.webhook_endpoints.retrieve(endpoint.id)
    assert retrieved.status == "disabled"
    attempts = fast_emulator.wait_until_settled(api_key)
    assert len(attempts) == 3  # the retry due while disabled sent nothing
    (row,) = [r for r in fast_emulator.event_log(api_key) if r["id"] == event_id]
    assert row["deliveries"] == {endpoint.id: "failed"}
    # Re-enabled, the endpoint does not get that event again.
    fast_emulator.client(api_key).v1.webhook_endpoints.update(
        endpoint.id, params={"disabled": False}
    )
    assert fast_emulator.wait_until_settled(api_key) == attempts
    assert len([r for r in sink.received if r.path == "/failing-then-off"]) == 3


def test_re_enabled_before_the_next_retry_the_retries_go_on(
    fast_emulator: StripeTarget, sink: Sink
) -> None:
    api_key, endpoint, _ = _failing(fast_emulator, sink, "/blip", [500, 500, 500, 200])
    fast_emulator.disable_endpoint(endpoint.id)
    fast_emulator.client(api_key).v1.webhook_endpoints.update(
        endpoint.id, params={"disabled": False}
    )
    attempts = fast_emulator.wait_until_settled(api_key)
    assert _statuses(attempts, endpoint.id) == [500, 500, 500, 200]


def test_a_cancellation_is_delivered_to_endpoints_that_want_deleted_only(
    fast_emulator: StripeTarget, sink: Sink
) -> None:
    api_key = fast_emulator.new_api_key()
    both = _endpoint(
        fast_emulator, api_key, sink.url("/cancels"), enabled_events=[UPDATED, DELETED]
    )
    updates_only = _endpoint(fast_emulator, api_key, sink.url("/updates-only"))
    sub = fast_emulator.create_subscription(api_key)
    canceled = fast_emulator.client(api_key).v1.subscriptions.cancel(sub.id)
    attempts = fast_emulator.wait_until_settled(api_key)
    assert [(a["endpoint"], a["event_type"], a["status"]) for a in attempts] == [
        (both.id, DELETED, 200)
    ]
    assert _statuses(attempts, updates_only.id) == []
    (received,) = [r for r in sink.received if r.path == "/cancels"]
    event = stripe.Webhook.construct_event(received.body, received.signature, both.secret)
    assert event.type == DELETED
    assert (event.data.object.status, event.data.object.ended_at) == (
        "canceled",
        canceled.ended_at,
    )
