"""Translation of stripe-python errors, retry decisions and the retry loop (no network: the
calls are plain coroutines that raise what stripe-python raises)."""

from __future__ import annotations

import random

import pytest
import stripe

from stripe_webhook_operator import exceptions as exc
from stripe_webhook_operator.limiter import TokenBucket
from stripe_webhook_operator.stripe_api import (
    StripeGateway,
    backoff_delay,
    should_retry,
    translate,
)


def error(status: int | None, message: str = "nope", **extra: object) -> stripe.StripeError:
    if status is None:
        return stripe.APIConnectionError("connection refused")
    cls = stripe.InvalidRequestError if status == 400 else stripe.StripeError
    if cls is stripe.InvalidRequestError:
        return stripe.InvalidRequestError(message, None, http_status=status, **extra)  # type: ignore[arg-type]
    return stripe.StripeError(message, http_status=status, **extra)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (None, exc.StripeUnavailable),
        (409, exc.StripeUnavailable),
        (429, exc.StripeUnavailable),
        (503, exc.StripeUnavailable),
        (401, exc.StripeAuthenticationFailed),
        (404, exc.StripeNotFound),
        (400, exc.StripeRejected),
    ],
)
def test_translation(status: int | None, kind: type[exc.StripeError]) -> None:
    translated = translate(error(status))
    assert type(translated) is kind


def test_endpoint_limit_has_its_own_error() -> None:
    message = "You have reached the maximum of 16 test webhook endpoints."
    assert isinstance(translate(error(400, message)), exc.EndpointLimitReached)


def test_api_key_never_in_the_translated_message() -> None:
    translated = translate(error(401, "Invalid API Key provided: sk_test_****abcd"))
    assert "sk_test_secretvalue" not in str(translated)


def test_should_retry_follows_status_and_stripe_header() -> None:
    assert should_retry(None, None)
    assert should_retry(429, None)
    assert should_retry(500, None)
    assert not should_retry(400, None)
    assert should_retry(409, "true")
    assert not should_retry(503, "false")


def test_backoff_grows_and_honours_retry_after() -> None:
    rng = random.Random(1)
    first = backoff_delay(0, None, rng)
    later = backoff_delay(4, None, rng)
    assert 0.25 <= first <= 0.5
    assert 4.0 <= later <= 8.0
    assert backoff_delay(0, "3", rng) >= 3


async def test_retry_loop_retries_429_then_succeeds_and_gives_up_on_400() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    gateway = StripeGateway(
        "http://127.0.0.1:9", TokenBucket(1000, 100), max_retries=3, sleep=sleep
    )
    failures = [error(429), error(429)]

    async def flaky() -> str:
        if failures:
            raise failures.pop(0)
        return "ok"

    assert await gateway._call("create", flaky) == "ok"
    assert len(slept) == 2

    async def rejected() -> str:
        raise error(400, "bad url")

    with pytest.raises(exc.StripeRejected, match="bad url"):
        await gateway._call("create", rejected)
    assert len(slept) == 2

    async def down() -> str:
        raise error(503)

    with pytest.raises(exc.StripeUnavailable):
        await gateway._call("list", down)
    assert len(slept) == 5


def test_a_key_still_in_use_is_retried_not_taken_for_a_mismatch() -> None:
    in_use = stripe.IdempotencyError(
        "There is currently another in-progress request using this Stripe-Idempotency-Key.",
        http_status=409,
        code="idempotency_key_in_use",
    )
    assert type(translate(in_use)) is exc.StripeUnavailable
    assert should_retry(409, None)
    mismatch = stripe.IdempotencyError(
        "Keys for idempotent requests can only be used with the same parameters.", http_status=400
    )
    assert type(translate(mismatch)) is exc.StripeIdempotencyMismatch
