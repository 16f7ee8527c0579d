"""stripe-mock checks requests against Stripe's OpenAPI specification, with Stripe's error shape."""

from __future__ import annotations

import httpx
import pytest
import stripe

from devstack.services.stripe_mock import StripeMock

pytestmark = pytest.mark.integration

API_KEY = "sk_test_devstack"
VALID = {"url": "https://hooks.example.com/webhooks/billing/my-app"}


def post_endpoint(stripe_mock: StripeMock, form: dict[str, str]) -> httpx.Response:
    return httpx.post(
        f"{stripe_mock.base_url}/v1/webhook_endpoints",
        data=form,
        headers={"Authorization": f"Bearer {API_KEY}"},
    )


def assert_invalid_request(response: httpx.Response, mentioning: str) -> None:
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert mentioning in error["message"]


EVENTS = {"enabled_events[0]": "customer.subscription.updated"}


def test_well_formed_form_is_accepted(stripe_mock: StripeMock) -> None:
    response = post_endpoint(stripe_mock, {**VALID, **EVENTS})

    assert response.status_code == 200
    assert response.json()["object"] == "webhook_endpoint"


@pytest.mark.parametrize(
    ("form", "mentioning"),
    [
        pytest.param({**VALID, **EVENTS, "colour": "blue"}, "additional properties", id="unknown"),
        pytest.param(VALID, "'enabled_events' is required", id="no-events"),
        pytest.param(EVENTS, "'url' is required", id="no-url"),
        pytest.param({**VALID, **EVENTS, "connect": "maybe"}, "'connect'", id="not-boolean"),
    ],
)
def test_malformed_create_is_refused(
    stripe_mock: StripeMock, form: dict[str, str], mentioning: str
) -> None:
    assert_invalid_request(post_endpoint(stripe_mock, form), mentioning)


def test_update_of_api_version_is_refused(stripe_mock: StripeMock) -> None:
    # Stripe cannot change an endpoint's API version in place; the operator must replace it.
    response = httpx.post(
        f"{stripe_mock.base_url}/v1/webhook_endpoints/we_123",
        data={"api_version": "2024-06-20"},
        headers={"Authorization": f"Bearer {API_KEY}"},
    )

    assert_invalid_request(response, "additional properties")


def test_valid_request_from_the_stripe_library_is_accepted(stripe_mock: StripeMock) -> None:
    client = stripe.StripeClient(API_KEY, base_addresses={"api": stripe_mock.base_url})

    endpoint = client.v1.webhook_endpoints.create(
        params={
            **VALID,
            "enabled_events": ["customer.subscription.updated"],
            "metadata": {"k8s-uid": "0b5c", "k8s-namespace": "billing", "k8s-name": "my-app"},
            "description": "billing/my-app",
        },
        options={"idempotency_key": "0b5c-1"},
    )

    assert endpoint.object == "webhook_endpoint"
    assert endpoint.id.startswith("we_")
