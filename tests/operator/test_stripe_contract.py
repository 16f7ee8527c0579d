"""Contract: every request stripe_api.py sends is accepted by Stripe's own stripe-mock, which
validates it against Stripe's OpenAPI specification (unknown or mistyped parameters fail); so is
the events listing that recovery (issue 14) will send, made here with stripe-python itself."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import stripe

from stripe_webhook_operator import manifests
from stripe_webhook_operator.exceptions import StripeRejected
from stripe_webhook_operator.limiter import TokenBucket
from stripe_webhook_operator.secret_value import SecretValue
from stripe_webhook_operator.stripe_api import StripeGateway

pytestmark = [
    pytest.mark.integration,
    # stripe-python's HTTPXClient posts its form body with `data=`, which httpx deprecates;
    # harmless, and out of our hands.
    pytest.mark.filterwarnings("ignore:Use 'content=<...>' to upload:DeprecationWarning"),
]

API_KEY = SecretValue("sk_test_123")
# The listing recovery sends for one gap: the webhook's enabled types, the gap's bounds, the
# events some webhook did not get, a full page, the next page after a cursor.
RECOVERY_LISTING: dict[str, Any] = {
    "types": ["customer.subscription.updated", "customer.subscription.deleted"],
    "created": {"gte": 1_790_000_000, "lte": 1_790_086_400},
    "delivery_success": False,
    "limit": 100,
    "starting_after": "evt_1RecoveryCursor",
}


def spec() -> manifests.WebhookSpec:
    body = {
        "metadata": {"namespace": "billing", "name": "my-app", "uid": "uid-1"},
        "spec": {
            "apiKeySecretRef": {"name": "k", "key": "k"},
            "description": "contract",
            "metadata": {"team": "billing"},
            "connect": True,
            # stripe-mock's bundled specification enumerates API versions up to an older one
            # than stripe-python 16's default; the request shape is the same.
            "stripeApiVersion": "2025-03-31.basil",
        },
    }
    return manifests.parse_webhook(body, "https://hooks.example.com")


@pytest.fixture
async def gateway(stripe_mock: Any) -> AsyncIterator[StripeGateway]:
    client = StripeGateway(stripe_mock.base_url, TokenBucket(100, 10), max_retries=0)
    yield client
    await client.aclose()


async def test_every_operator_request_matches_stripe_openapi(gateway: StripeGateway) -> None:
    params = manifests.create_params(spec(), "cluster", 1)
    # stripe-mock validates the create but answers with a fixture that has no `secret`, which
    # create_endpoint() refuses (as it should); the request itself is what is checked here.
    with pytest.raises(StripeRejected, match="no signing secret"):
        await gateway.create_endpoint(API_KEY, params, "key-1")
    created = await gateway.retrieve_endpoint(API_KEY, "we_123")
    retrieved = await gateway.retrieve_endpoint(API_KEY, created.id)
    assert retrieved.id
    other = manifests.parse_webhook(
        {
            "metadata": {"namespace": "billing", "name": "my-app", "uid": "uid-1"},
            "spec": {
                "apiKeySecretRef": {"name": "k", "key": "k"},
                "url": "https://moved.example.com/x",
                "disabled": True,
            },
        },
        None,
    )
    update = manifests.update_params(other, retrieved, "cluster", 1)
    assert update
    await gateway.update_endpoint(API_KEY, created.id, update)
    await gateway.update_endpoint(API_KEY, created.id, {"disabled": False})
    assert await gateway.list_endpoints(API_KEY)
    assert await gateway.delete_endpoint(API_KEY, created.id) in {True, False}


async def test_stripe_mock_refuses_what_stripe_would(gateway: StripeGateway) -> None:
    # The contract layer has teeth: a parameter Stripe does not know is refused.
    with pytest.raises(StripeRejected):
        await gateway.update_endpoint(API_KEY, "we_123", {"no_such_parameter": "x"})


def test_the_recovery_listing_of_events_matches_stripe_openapi(stripe_mock: Any) -> None:
    client = stripe.StripeClient(
        "sk_test_123", base_addresses={"api": stripe_mock.base_url}, max_network_retries=0
    )
    page = client.v1.events.list(params=RECOVERY_LISTING)  # type: ignore[arg-type]
    assert page.object == "list"
    assert isinstance(page.has_more, bool)
    # The same check refuses what Stripe would: a misspelt filter, a filter of the wrong type.
    for wrong in ({"delivery_succeeded": False}, {"delivery_success": "maybe"}):
        with pytest.raises(stripe.InvalidRequestError):
            client.v1.events.list(params={**RECOVERY_LISTING, **wrong})  # type: ignore[arg-type]
