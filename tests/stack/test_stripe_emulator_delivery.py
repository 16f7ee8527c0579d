"""Webhook deliveries from the Stripe emulator: signed like Stripe (checked with stripe-python's
own verifier), shaped per the endpoint's API version, retried after failures, and sent only
to enabled endpoints that want the event."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import stripe
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from devstack.processes import free_port
from devstack.stripe_emulator.fixtures import StripeTarget

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


def test_endpoint_disabled_as_stripe_would_stops_retries(
    stripe_emulator: StripeTarget, sink: Sink
) -> None:
    api_key = stripe_emulator.new_api_key()
    sink.script["/failing"] = [500]
    endpoint = _endpoint(stripe_emulator, api_key, sink.url("/failing"))
    sub = stripe_emulator.create_subscription(api_key)
    stripe_emulator.client(api_key).v1.subscriptions.update(sub.id, params={"metadata": {"n": "1"}})
    stripe_emulator.wait_for_deliveries(api_key, lambda rows: len(rows) >= 1)
    stripe_emulator.disable_endpoint(endpoint.id)
    assert stripe_emulator.client(api_key).v1.webhook_endpoints.retrieve(endpoint.id).status == (
        "disabled"
    )
    count = len(stripe_emulator.deliveries(api_key))
    assert len(stripe_emulator.wait_until_settled(api_key)) == count


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
