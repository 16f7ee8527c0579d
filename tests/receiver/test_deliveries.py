"""The delivery endpoint driven in-process through its ASGI app: answers, logs and metrics.

The receiver process tests cover every status code over real HTTP; these look at what the
hot path's shortcuts must keep exactly: the bytes of each answer, the `Delivery answered.`
line at INFO (and nothing built below it), and the counters.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.applications import Starlette
from starlette.routing import Match, Route
from starlette.types import Message

from stripe_webhook_receiver.app import create_app
from stripe_webhook_receiver.deliveries import (
    OUTCOME_ANSWERS,
    receive_webhook,
    webhook_path_params,
)
from stripe_webhook_receiver.runtime import Runtime
from stripe_webhook_receiver.settings import Settings
from stripe_webhook_receiver.signing import fingerprint
from stripe_webhook_receiver.store import Outcome
from tests.receiver.layout import project, webhook_file
from tests.receiver.payloads import signed, subscription_event

WEBHOOK = "billing/app"
PATH = "/webhooks/billing/app"
SECRET = "whsec_inprocess_1"
KEY = "rk_inprocess_key"
LOGGER = "stripe_webhook_receiver.deliveries"


class Lifespan:
    """Runs an app's lifespan (startup, then shutdown) the way uvicorn does."""

    def __init__(self, app: Starlette) -> None:
        self.app = app
        self.queue: asyncio.Queue[Message] = asyncio.Queue()
        self.started = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _send(self, message: Message) -> None:
        if message["type"] == "lifespan.startup.complete":
            self.started.set()

    async def __aenter__(self) -> Runtime:
        await self.queue.put({"type": "lifespan.startup"})
        scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        self.task = asyncio.create_task(self.app(scope, self.queue.get, self._send))
        await asyncio.wait_for(self.started.wait(), 10)
        runtime: Runtime = self.app.state.runtime
        await asyncio.wait_for(runtime.migrated.wait(), 10)
        return runtime

    async def __aexit__(self, *exc: object) -> None:
        await self.queue.put({"type": "lifespan.shutdown"})
        assert self.task is not None
        await asyncio.wait_for(self.task, 10)


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    secrets_dir = tmp_path / "secrets"
    project(secrets_dir, dict([webhook_file(WEBHOOK, [(SECRET, None)], KEY)]))
    settings = Settings(secrets_dir=secrets_dir, database_url=f"sqlite:///{tmp_path}/r.db")
    app = create_app(settings)
    async with Lifespan(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            yield http


async def deliver(client: httpx.AsyncClient, event: dict[str, Any]) -> httpx.Response:
    body, headers = signed(event, [SECRET])
    return await client.post(PATH, content=body, headers=headers)


async def register(client: httpx.AsyncClient, subscription_id: str) -> None:
    response = await client.post(
        "/v1/receipts",
        json={"app_user_id": "alice", "fetch_token": subscription_id},
        headers={"Authorization": f"Bearer {KEY}"},
    )
    assert response.status_code in (200, 201), response.text


def answered(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [
        dict(record.__dict__["fields"])
        for record in caplog.records
        if record.name == LOGGER and record.getMessage() == "Delivery answered."
    ]


async def test_each_outcome_answers_its_exact_bytes(client: httpx.AsyncClient) -> None:
    event = subscription_event("sub_bytes")
    missing = await deliver(client, event)
    assert missing.status_code == 422
    assert missing.json()["error"]["code"] == "receipt_not_found"
    await register(client, "sub_bytes")
    applied = await deliver(client, subscription_event("sub_bytes"))
    duplicate = await deliver(client, event)
    stale = await deliver(client, subscription_event("sub_bytes", created=1_600_000_000))
    for response, outcome in ((applied, "applied"), (duplicate, "duplicate"), (stale, "stale")):
        assert response.status_code == 200
        assert response.content == json.dumps({"outcome": outcome}, separators=(",", ":")).encode()
        assert response.headers["content-type"] == "application/json"
        assert response.headers["content-length"] == str(len(response.content))


async def test_an_answered_delivery_is_logged_at_info_with_its_fields(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER)
    await register(client, "sub_logged")
    event = subscription_event("sub_logged")
    assert (await deliver(client, event)).status_code == 200
    refused = await client.post(PATH, content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
    assert refused.status_code == 400
    [applied, rejected] = answered(caplog)
    duration = applied.pop("duration_ms")
    assert isinstance(duration, float)
    assert duration >= 0
    assert applied == {
        "webhook": WEBHOOK,
        "event_id": event["id"],
        "event_type": "customer.subscription.updated",
        "subscription_id": "sub_logged",
        "secret_fingerprint": fingerprint(SECRET),
        "outcome": "applied",
        "status": 200,
    }
    assert rejected == {
        "webhook": WEBHOOK,
        "event_id": None,
        "event_type": None,
        "subscription_id": None,
        "secret_fingerprint": None,
        "outcome": "timestamp_outside_tolerance",
        "status": 400,
    }


async def test_below_info_no_delivery_line_is_made(
    client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger=LOGGER)
    await register(client, "sub_quiet")
    assert (await deliver(client, subscription_event("sub_quiet"))).status_code == 200
    assert answered(caplog) == []


async def test_delivery_counters_count_each_answer(client: httpx.AsyncClient) -> None:
    await register(client, "sub_counted")
    for _ in range(3):
        assert (await deliver(client, subscription_event("sub_counted"))).status_code == 200
    await client.post(PATH, content=b"{}")
    await client.post("/webhooks/billing/absent", content=b"{}")
    text = (await client.get("/metrics")).text
    prefix = "stripe_webhook_receiver_deliveries_total"
    assert (
        f'{prefix}{{outcome="applied",type="customer.subscription.updated",webhook="billing/app"}}'
        " 3.0" in text
    )
    assert f'{prefix}{{outcome="missing_header",type="",webhook="billing/app"}} 1.0' in text
    assert f'{prefix}{{outcome="webhook_not_found",type="",webhook="unknown"}} 1.0' in text


async def test_each_loaded_webhook_has_its_replay_counter_before_any_replay(
    client: httpx.AsyncClient,
) -> None:
    """The alert on held deliveries compares them with replays: the replay counter must be
    there at 0, or the first replay (the counter appearing at 1) would show no increase."""
    text = (await client.get("/metrics")).text
    assert 'stripe_webhook_receiver_replayed_deliveries_total{webhook="billing/app"} 0.0' in text


async def test_a_refused_type_is_labelled_by_name_only_when_known(
    client: httpx.AsyncClient,
) -> None:
    """A verified body may carry any string as its type: only the types the receiver knows
    become a label value, every other is `other`, so the series stay a bounded set."""
    for event_type in ("invoice.paid", "made.up.type.1", "made.up.type.2"):
        refused = await deliver(client, subscription_event("sub_typed", event_type=event_type))
        assert refused.status_code == 400
    deleted = await deliver(
        client, subscription_event("sub_typed", event_type="customer.subscription.deleted")
    )
    assert deleted.status_code == 400
    text = (await client.get("/metrics")).text
    prefix = "stripe_webhook_receiver_deliveries_total"
    assert (
        f'{prefix}{{outcome="unsupported_event_type",type="other",webhook="billing/app"}} 3.0'
        in text
    )
    assert (
        f'{prefix}{{outcome="unsupported_event_type",type="customer.subscription.deleted",'
        'webhook="billing/app"} 1.0' in text
    )
    assert "made.up" not in text
    assert "invoice.paid" not in text


async def test_other_methods_unknown_paths_and_unexpected_errors_answer_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secrets_dir = tmp_path / "secrets"
    project(secrets_dir, dict([webhook_file(WEBHOOK, [(SECRET, None)], KEY)]))
    app = create_app(Settings(secrets_dir=secrets_dir, database_url=f"sqlite:///{tmp_path}/e.db"))
    async with Lifespan(app) as runtime:
        # The server still sees the error (as uvicorn logs it); the client gets the JSON 500.
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://receiver") as http:
            wrong = await http.get(PATH)
            assert wrong.status_code == 405
            assert wrong.json()["error"]["code"] == "method_not_allowed"
            assert (await http.post(PATH + "/more")).json()["error"]["code"] == "not_found"

            async def broken(*args: object) -> None:
                raise RuntimeError("a bug")

            monkeypatch.setattr(runtime.store, "record_and_process", broken)
            failed = await deliver(http, subscription_event("sub_bug"))
            assert failed.status_code == 500
            assert failed.json()["error"]["code"] == "internal_error"
        # The error itself is raised on to the server, as Starlette's middleware raises it.
        raising = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=raising, base_url="http://receiver") as http:
            with pytest.raises(RuntimeError, match="a bug"):
                await deliver(http, subscription_event("sub_raised"))


async def test_a_delivery_under_a_root_path_goes_through_starlette_with_the_same_answers(
    tmp_path: Path,
) -> None:
    # Deliveries skip Starlette's middleware and router (app.ReceiverApp); under a root_path
    # they take Starlette's route: the two must answer alike, byte for byte.
    secrets_dir = tmp_path / "secrets"
    project(secrets_dir, dict([webhook_file(WEBHOOK, [(SECRET, None)], KEY)]))
    app = create_app(Settings(secrets_dir=secrets_dir, database_url=f"sqlite:///{tmp_path}/p.db"))
    async with Lifespan(app):
        through_starlette: list[str] = []
        stack = app.middleware_stack
        assert stack is not None

        async def counted(scope: Any, receive: Any, send: Any) -> None:
            through_starlette.append(f"{scope['method']} {scope['path']}")
            await stack(scope, receive, send)

        app.middleware_stack = counted
        direct = httpx.ASGITransport(app=app)
        routed = httpx.ASGITransport(app=app, root_path="/receiver")
        async with (
            httpx.AsyncClient(transport=direct, base_url="http://receiver") as fast,
            httpx.AsyncClient(transport=routed, base_url="http://receiver") as slow,
        ):
            await register(fast, "sub_direct")
            await register(fast, "sub_routed")
            answers = []
            for client, subscription in ((fast, "sub_direct"), (slow, "sub_routed")):
                body, headers = signed(subscription_event(subscription), [SECRET])
                path = "/receiver" + PATH if client is slow else PATH
                applied = await client.post(path, content=body, headers=headers)
                duplicate = await client.post(path, content=body, headers=headers)
                forged = await client.post(path, content=body, headers={"Stripe-Signature": "x"})
                answers.append(
                    [
                        (r.status_code, r.content, sorted(r.headers.items()))
                        for r in (applied, duplicate, forged)
                    ]
                )
            assert answers[0] == answers[1]
            assert [status for status, _, _ in answers[0]] == [200, 200, 400]
            assert [json.loads(body).get("outcome") for _, body, _ in answers[0]] == [
                "applied",
                "duplicate",
                None,
            ]
            # Only the routed deliveries (and the receipts) went through Starlette's stack.
            routed_posts = [f"POST /receiver{PATH}"] * 3
            assert through_starlette == ["POST /v1/receipts"] * 2 + routed_posts


@given(st.lists(st.sampled_from(["/", "webhooks", "a", "b", "%2F", ".", ""]), max_size=6))
def test_the_delivery_path_is_read_as_starlettes_route_reads_it(parts: list[str]) -> None:
    route = Route("/webhooks/{namespace}/{name}", receive_webhook, methods=["POST"])
    path = "/" + "".join(parts)
    scope = {"type": "http", "method": "POST", "path": path, "root_path": ""}
    match, child = route.matches(scope)
    expected = child["path_params"] if match is Match.FULL else None
    assert webhook_path_params(path) == expected


async def test_a_fixed_answer_sends_a_fresh_header_list_each_time() -> None:
    answer = OUTCOME_ANSWERS[Outcome.APPLIED]
    sent: list[Message] = []

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            # What a middleware adding a header does to the message it is handed.
            message["headers"].append((b"x-added", b"1"))
        sent.append(message)

    scope = {"type": "http", "method": "POST", "path": PATH, "headers": []}

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    await answer(scope, receive, send)
    await answer(scope, receive, send)
    body = b'{"outcome":"applied"}'
    assert sent[2]["headers"] == [
        (b"content-length", str(len(body)).encode()),
        (b"content-type", b"application/json"),
        (b"x-added", b"1"),
    ]
    assert sent[3] == {"type": "http.response.body", "body": body}
