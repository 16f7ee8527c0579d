"""The Stripe emulator's API, driven by stripe-python (Stripe's own client) and raw HTTP."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import stripe

from devstack.stripe_emulator.fixtures import StripeTarget

pytestmark = pytest.mark.integration

EVENTS = ["customer.subscription.updated"]


def _endpoint_params(**extra: Any) -> dict[str, Any]:
    return {"url": "http://127.0.0.1:9/hook", "enabled_events": EVENTS, **extra}


def _raw(emulator: StripeTarget, api_key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {api_key}", **kw.pop("headers", {})}
    timeout = kw.pop("timeout", 10)
    return httpx.request(method, emulator.base_url + path, headers=headers, timeout=timeout, **kw)


def test_create_returns_the_secret_and_retrieve_and_list_never_do(
    stripe_emulator: StripeTarget,
) -> None:
    client = stripe_emulator.client(stripe_emulator.new_api_key())
    created = client.v1.webhook_endpoints.create(
        params={**_endpoint_params(), "metadata": {"team": "billing"}, "description": "d"}
    )
    assert created.secret.startswith("whsec_")
    assert created.id.startswith("we_")
    assert created.status == "enabled"
    assert created.metadata.to_dict() == {"team": "billing"}
    fetched = client.v1.webhook_endpoints.retrieve(created.id)
    listed = client.v1.webhook_endpoints.list()
    assert "secret" not in fetched
    assert [e.id for e in listed.data] == [created.id]
    assert all("secret" not in e for e in listed.data)
    assert fetched.url == created.url
    assert fetched.enabled_events == EVENTS


def test_idempotent_replay_returns_the_same_endpoint_and_secret(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    body = {"url": "http://127.0.0.1:9/hook", "enabled_events[0]": EVENTS[0]}
    headers = {"Idempotency-Key": "swh-uid-1-v1"}
    first = _raw(
        stripe_emulator, api_key, "POST", "/v1/webhook_endpoints", data=body, headers=headers
    )
    again = _raw(
        stripe_emulator, api_key, "POST", "/v1/webhook_endpoints", data=body, headers=headers
    )
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.json()["secret"] == first.json()["secret"]
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.headers["Original-Request"] == first.headers["Request-Id"]
    assert "Idempotent-Replayed" not in first.headers
    endpoints = stripe_emulator.client(api_key).v1.webhook_endpoints.list()
    assert len(endpoints.data) == 1


def test_same_idempotency_key_with_other_parameters_is_an_idempotency_error(
    stripe_emulator: StripeTarget,
) -> None:
    client = stripe_emulator.client(stripe_emulator.new_api_key())
    options: Any = {"idempotency_key": "swh-uid-2-v1"}
    client.v1.webhook_endpoints.create(params=_endpoint_params(), options=options)
    with pytest.raises(stripe.IdempotencyError) as raised:
        client.v1.webhook_endpoints.create(
            params=_endpoint_params(url="http://127.0.0.1:9/other"),
            options=options,
        )
    assert raised.value.http_status == 400
    assert raised.value.error is not None
    assert raised.value.error.type == "idempotency_error"


def test_sixteen_endpoints_per_account_then_stripes_error(stripe_emulator: StripeTarget) -> None:
    client = stripe_emulator.client(stripe_emulator.new_api_key())
    for _ in range(16):
        client.v1.webhook_endpoints.create(params=_endpoint_params())
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.webhook_endpoints.create(params=_endpoint_params())
    assert raised.value.http_status == 400
    assert "maximum of 16" in str(raised.value.user_message)
    other = stripe_emulator.client(stripe_emulator.new_api_key())
    assert other.v1.webhook_endpoints.create(params=_endpoint_params()).id


def test_update_changes_allowed_fields_and_refuses_api_version_and_connect(
    stripe_emulator: StripeTarget,
) -> None:
    client = stripe_emulator.client(stripe_emulator.new_api_key())
    created = client.v1.webhook_endpoints.create(
        params=_endpoint_params(metadata={"a": "1", "b": "2"})
    )
    updated = client.v1.webhook_endpoints.update(
        created.id,
        params={"disabled": True, "url": "http://127.0.0.1:9/new", "metadata": {"a": ""}},
    )
    assert updated.status == "disabled"
    assert updated.url == "http://127.0.0.1:9/new"
    assert updated.metadata.to_dict() == {"b": "2"}
    assert "secret" not in updated
    for name, value in (("api_version", "2025-03-31.basil"), ("connect", True)):
        with pytest.raises(stripe.InvalidRequestError) as raised:
            client.v1.webhook_endpoints.update(created.id, params={name: value})
        assert raised.value.code == "parameter_unknown"
        assert raised.value.param == name


def test_delete_then_retrieve_is_resource_missing(stripe_emulator: StripeTarget) -> None:
    client = stripe_emulator.client(stripe_emulator.new_api_key())
    created = client.v1.webhook_endpoints.create(params=_endpoint_params())
    deleted = client.v1.webhook_endpoints.delete(created.id)
    assert deleted.to_dict() == {"id": created.id, "object": "webhook_endpoint", "deleted": True}
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.webhook_endpoints.retrieve(created.id)
    assert raised.value.http_status == 404
    assert raised.value.code == "resource_missing"


def test_list_pages_newest_first_with_cursors(stripe_emulator: StripeTarget) -> None:
    client = stripe_emulator.client(stripe_emulator.new_api_key())
    ids = [client.v1.webhook_endpoints.create(params=_endpoint_params()).id for _ in range(5)]
    newest_first = list(reversed(ids))
    page = client.v1.webhook_endpoints.list(params={"limit": 2})
    assert [e.id for e in page.data] == newest_first[:2]
    assert page.has_more
    page = client.v1.webhook_endpoints.list(params={"limit": 2, "starting_after": newest_first[1]})
    assert [e.id for e in page.data] == newest_first[2:4]
    assert page.has_more
    page = client.v1.webhook_endpoints.list(params={"limit": 2, "starting_after": newest_first[3]})
    assert [e.id for e in page.data] == newest_first[4:]
    assert not page.has_more
    page = client.v1.webhook_endpoints.list(params={"limit": 2, "ending_before": newest_first[4]})
    assert [e.id for e in page.data] == newest_first[2:4]
    assert page.has_more
    everything = client.v1.webhook_endpoints.list(params={"limit": 2}).auto_paging_iter()
    assert [e.id for e in everything] == newest_first


def test_accounts_are_isolated_and_bad_keys_are_refused(stripe_emulator: StripeTarget) -> None:
    first = stripe_emulator.client(stripe_emulator.new_api_key())
    created = first.v1.webhook_endpoints.create(params=_endpoint_params())
    second = stripe_emulator.client(stripe_emulator.new_api_key())
    assert second.v1.webhook_endpoints.list().data == []
    with pytest.raises(stripe.InvalidRequestError):
        second.v1.webhook_endpoints.retrieve(created.id)
    with pytest.raises(stripe.AuthenticationError) as raised:
        stripe_emulator.client("sk_live_nope").v1.webhook_endpoints.list()
    assert raised.value.http_status == 401
    answer = httpx.get(stripe_emulator.base_url + "/v1/webhook_endpoints", timeout=10)
    assert answer.status_code == 401
    assert answer.json()["error"]["type"] == "invalid_request_error"


def test_basic_auth_opens_the_same_account_as_bearer(stripe_emulator: StripeTarget) -> None:
    api_key = stripe_emulator.new_api_key()
    created = stripe_emulator.client(api_key).v1.webhook_endpoints.create(params=_endpoint_params())
    answer = httpx.get(
        stripe_emulator.base_url + "/v1/webhook_endpoints", auth=(api_key, ""), timeout=10
    )
    assert [e["id"] for e in answer.json()["data"]] == [created.id]
    assert answer.headers["Request-Id"].startswith("req_")


def test_unknown_create_parameter_and_missing_url_use_stripes_error_shape(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    answer = _raw(
        stripe_emulator,
        api_key,
        "POST",
        "/v1/webhook_endpoints",
        data={"url": "http://127.0.0.1:9/x", "enabled_events[0]": EVENTS[0], "colour": "red"},
    )
    assert answer.status_code == 400
    assert answer.json()["error"] | {"doc_url": None} == {
        "type": "invalid_request_error",
        "code": "parameter_unknown",
        "param": "colour",
        "message": "Received unknown parameter: colour",
        "doc_url": None,
    }
    missing = _raw(
        stripe_emulator,
        api_key,
        "POST",
        "/v1/webhook_endpoints",
        data={"enabled_events[0]": EVENTS[0]},
    )
    assert missing.status_code == 400
    assert missing.json()["error"]["code"] == "parameter_missing"
    assert missing.json()["error"]["param"] == "url"


def test_injected_429_without_should_retry_reaches_the_caller_once(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    client = stripe_emulator.client(api_key, max_network_retries=2)
    stripe_emulator.inject_fault(api_key, status=429, path_prefix="/v1/webhook_endpoints")
    with pytest.raises(stripe.RateLimitError) as raised:
        client.v1.webhook_endpoints.list()
    assert raised.value.http_status == 429
    assert stripe_emulator.stats(api_key)["calls"]["GET /v1/webhook_endpoints"] == 1
    assert client.v1.webhook_endpoints.list().data == []


def test_injected_429_with_should_retry_is_retried_by_stripe_python(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    client = stripe_emulator.client(api_key, max_network_retries=2)
    stripe_emulator.inject_fault(
        api_key, status=429, should_retry=True, path_prefix="/v1/webhook_endpoints"
    )
    assert client.v1.webhook_endpoints.list().data == []
    stats = stripe_emulator.stats(api_key)
    assert stats["calls"]["GET /v1/webhook_endpoints"] == 2
    assert stats["faults_served"] == 1


@pytest.mark.parametrize("status", [500, 503])
def test_injected_5xx_is_an_api_error_without_retries_and_retried_with_them(
    stripe_emulator: StripeTarget, status: int
) -> None:
    api_key = stripe_emulator.new_api_key()
    stripe_emulator.inject_fault(api_key, status=status, method="POST")
    with pytest.raises(stripe.APIError) as raised:
        stripe_emulator.client(api_key).v1.webhook_endpoints.create(params=_endpoint_params())
    assert raised.value.http_status == status
    stripe_emulator.inject_fault(api_key, status=status, method="POST")
    patient = stripe_emulator.client(api_key, max_network_retries=1)
    assert patient.v1.webhook_endpoints.create(params=_endpoint_params()).secret
    assert len(patient.v1.webhook_endpoints.list().data) == 1


def test_connection_dropped_after_the_create_is_healed_by_the_idempotent_retry(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    stripe_emulator.inject_fault(api_key, drop="after", method="POST")
    with pytest.raises(stripe.APIConnectionError):
        stripe_emulator.client(api_key).v1.webhook_endpoints.create(params=_endpoint_params())
    client = stripe_emulator.client(api_key, max_network_retries=1)
    assert len(client.v1.webhook_endpoints.list().data) == 1
    stripe_emulator.inject_fault(api_key, drop="after", method="POST")
    created = client.v1.webhook_endpoints.create(params=_endpoint_params())
    listed = client.v1.webhook_endpoints.list().data
    assert len(listed) == 2
    assert created.id in {e.id for e in listed}
    assert created.secret.startswith("whsec_")


def test_connection_dropped_before_the_create_creates_nothing(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    stripe_emulator.inject_fault(api_key, drop="before", method="POST")
    with pytest.raises(stripe.APIConnectionError):
        stripe_emulator.client(api_key).v1.webhook_endpoints.create(params=_endpoint_params())
    assert stripe_emulator.client(api_key).v1.webhook_endpoints.list().data == []


def test_latency_fault_delays_but_answers(stripe_emulator: StripeTarget) -> None:
    api_key = stripe_emulator.new_api_key()
    stripe_emulator.inject_fault(api_key, latency=0.3, path_prefix="/v1/webhook_endpoints")
    with pytest.raises(httpx.ReadTimeout):
        _raw(stripe_emulator, api_key, "GET", "/v1/webhook_endpoints", timeout=0.1)
    assert stripe_emulator.client(api_key).v1.webhook_endpoints.list().data == []


def test_answer_latency_runs_the_request_before_the_answer_is_lost(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    stripe_emulator.inject_fault(api_key, answer_latency=0.5, method="POST")
    with pytest.raises(httpx.ReadTimeout):
        _raw(
            stripe_emulator,
            api_key,
            "POST",
            "/v1/webhook_endpoints",
            data={"url": "http://127.0.0.1:9/x", "enabled_events[0]": EVENTS[0]},
            timeout=0.1,
        )
    client = stripe_emulator.client(api_key)
    deadline = time.monotonic() + 10
    while not client.v1.webhook_endpoints.list().data:
        assert time.monotonic() < deadline, "the create never ran"
        time.sleep(0.05)
    assert len(client.v1.webhook_endpoints.list().data) == 1


def test_a_key_whose_first_request_still_runs_is_in_use_and_then_replays(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    account = _raw(stripe_emulator, api_key, "GET", "/v1/account").json()["id"]
    fault = {"account": account, "method": "POST", "work_latency": 1.5, "count": 1}
    httpx.post(f"{stripe_emulator.base_url}/_emulator/faults", json=fault, timeout=10)
    create = {
        "data": {"url": "http://127.0.0.1:9/x", "enabled_events[0]": EVENTS[0]},
        "headers": {"Idempotency-Key": "in-use-test"},
    }
    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(
            _raw, stripe_emulator, api_key, "POST", "/v1/webhook_endpoints", **create
        )
        deadline = time.monotonic() + 10
        while not stripe_emulator.stats(api_key)["calls"].get("POST /v1/webhook_endpoints"):
            assert time.monotonic() < deadline, "the first request never arrived"
            time.sleep(0.02)
        second = _raw(stripe_emulator, api_key, "POST", "/v1/webhook_endpoints", **create)
        assert second.status_code == 409, second.text
        error = second.json()["error"]
        assert (error["type"], error["code"]) == ("idempotency_error", "idempotency_key_in_use")
        assert first.result(timeout=10).status_code == 200
    # Nothing was saved for the refused request: the key now replays the first answer.
    third = _raw(stripe_emulator, api_key, "POST", "/v1/webhook_endpoints", **create)
    assert third.headers["Idempotent-Replayed"] == "true"
    assert third.json()["id"] == first.result().json()["id"]
    assert len(stripe_emulator.client(api_key).v1.webhook_endpoints.list().data) == 1
    assert stripe_emulator.stats(api_key)["idempotency_key_in_use"] == 1


def test_stats_count_calls_by_method_and_path_template(stripe_emulator: StripeTarget) -> None:
    api_key = stripe_emulator.new_api_key()
    client = stripe_emulator.client(api_key)
    created = client.v1.webhook_endpoints.create(params=_endpoint_params())
    client.v1.webhook_endpoints.retrieve(created.id)
    client.v1.webhook_endpoints.retrieve(created.id)
    calls = stripe_emulator.stats(api_key)["calls"]
    assert calls["POST /v1/webhook_endpoints"] == 1
    assert calls["GET /v1/webhook_endpoints/{id}"] == 2
    stripe_emulator.reset_stats(api_key)
    assert stripe_emulator.stats(api_key)["total"] == 0


def test_subscription_lifecycle_fields(stripe_emulator: StripeTarget) -> None:
    api_key = stripe_emulator.new_api_key()
    client = stripe_emulator.client(api_key)
    sub = stripe_emulator.create_subscription(api_key)
    assert sub.status == "active"
    assert sub.cancel_at_period_end is False
    period_end = sub["items"].data[0].current_period_end
    assert period_end > sub.start_date
    updated = client.v1.subscriptions.update(sub.id, params={"cancel_at_period_end": True})
    assert updated.cancel_at_period_end is True
    assert updated.cancel_at == period_end
    assert updated.canceled_at is not None
    assert updated.status == "active"
    canceled = client.v1.subscriptions.cancel(sub.id)
    assert canceled.status == "canceled"
    assert canceled.ended_at is not None
    assert client.v1.subscriptions.retrieve(sub.id).status == "canceled"
    assert client.v1.subscriptions.list().data == []
    types = [e.type for e in client.v1.events.list(params={"limit": 100}).auto_paging_iter()]
    assert types[:3] == [
        "customer.subscription.deleted",
        "customer.subscription.updated",
        "customer.subscription.created",
    ]


def test_trial_ends_on_trial_end_now(stripe_emulator: StripeTarget) -> None:
    api_key = stripe_emulator.new_api_key()
    client = stripe_emulator.client(api_key)
    sub = stripe_emulator.create_subscription(api_key, trial_end=2_000_000_000)
    assert sub.status == "trialing"
    assert sub.trial_end == 2_000_000_000
    active = client.v1.subscriptions.update(sub.id, params={"trial_end": "now"})
    assert active.status == "active"
    assert active["items"].data[0].current_period_end < 2_000_000_000


def test_create_checks_api_version_and_connect_sets_application(
    stripe_emulator: StripeTarget,
) -> None:
    client = stripe_emulator.client(stripe_emulator.new_api_key())
    with pytest.raises(stripe.InvalidRequestError) as raised:
        client.v1.webhook_endpoints.create(params=_endpoint_params(api_version="2025-99-99"))
    assert raised.value.param == "api_version"
    connected = client.v1.webhook_endpoints.create(
        params=_endpoint_params(connect=True, api_version="2025-03-31.basil")
    )
    assert connected.application is not None
    assert connected.api_version == "2025-03-31.basil"
    assert client.v1.webhook_endpoints.create(params=_endpoint_params()).api_version is None


def test_events_filter_by_type_and_created(stripe_emulator: StripeTarget) -> None:
    api_key = stripe_emulator.new_api_key()
    client = stripe_emulator.client(api_key)
    sub = stripe_emulator.create_subscription(api_key)
    client.v1.subscriptions.update(sub.id, params={"metadata": {"k": "v"}})
    updated = client.v1.events.list(params={"type": "customer.subscription.updated"}).data
    assert [e.type for e in updated] == ["customer.subscription.updated"]
    assert updated[0].data.previous_attributes.to_dict() == {"metadata": {}}
    wildcard = client.v1.events.list(params={"type": "customer.subscription.*"}).data
    assert {e.type for e in wildcard} == {
        "customer.subscription.created",
        "customer.subscription.updated",
    }
    future = client.v1.events.list(params={"created": {"gt": updated[0].created + 3600}})
    assert future.data == []


def test_replay_returns_the_saved_answer_not_the_current_object(
    stripe_emulator: StripeTarget,
) -> None:
    api_key = stripe_emulator.new_api_key()
    headers = {"Idempotency-Key": "product-1"}
    first = _raw(
        stripe_emulator, api_key, "POST", "/v1/products", data={"name": "Old"}, headers=headers
    )
    product_id = first.json()["id"]
    stripe_emulator.client(api_key).v1.products.update(product_id, params={"name": "New"})
    again = _raw(
        stripe_emulator, api_key, "POST", "/v1/products", data={"name": "Old"}, headers=headers
    )
    assert again.json()["name"] == "Old"
    assert again.json()["id"] == product_id
    elsewhere = _raw(
        stripe_emulator, api_key, "POST", "/v1/customers", data={"name": "Old"}, headers=headers
    )
    assert elsewhere.status_code == 400
    assert elsewhere.json()["error"]["type"] == "idempotency_error"
