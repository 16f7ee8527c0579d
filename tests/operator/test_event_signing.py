"""The operator's signer for redelivered events: its headers verify with the receiver's own
verifier and with stripe-python's `Webhook.construct_event`, exactly as Stripe's deliveries do,
and a changed body, another secret or another time does not."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest
import stripe

from stripe_webhook_operator.event_signing import signature_header
from stripe_webhook_operator.secret_value import SecretValue
from stripe_webhook_receiver.signing import SignatureError, SigningSecret, verify

SENT_AT = 1_790_000_000
CREATED = SENT_AT - 86400
SECRET = "whsec_recovery_0123456789abcdef"
EVENT = {
    "id": "evt_1Recovered",
    "object": "event",
    "type": "customer.subscription.deleted",
    "created": CREATED,
    # Non-ASCII text: the signature covers the UTF-8 bytes sent, as Stripe's does.
    "data": {"object": {"id": "sub_1", "object": "subscription", "description": "Café"}},
}
PAYLOAD = json.dumps(EVENT, indent=2, ensure_ascii=False).encode()


def receiver_verifies(payload: bytes, header: str, secret: str = SECRET) -> bool:
    try:
        verify(
            payload,
            header,
            [SigningSecret.of(secret)],
            now=datetime.fromtimestamp(SENT_AT, UTC),
            tolerance=300,
        )
    except SignatureError:
        return False
    return True


def test_the_header_has_stripes_form() -> None:
    header = signature_header(PAYLOAD, SecretValue(SECRET), SENT_AT)
    assert re.fullmatch(rf"t={SENT_AT},v1=[0-9a-f]{{64}}", header)


def test_the_receiver_verifies_it() -> None:
    header = signature_header(PAYLOAD, SecretValue(SECRET), SENT_AT)
    assert receiver_verifies(PAYLOAD, header)


def test_stripe_python_verifies_it_and_reads_the_event() -> None:
    header = signature_header(PAYLOAD, SecretValue(SECRET), SENT_AT)
    # tolerance=0 leaves out stripe-python's wall-clock check; the receiver's test checks time.
    event = stripe.Webhook.construct_event(PAYLOAD, header, SECRET, tolerance=0)
    assert event.id == EVENT["id"]
    assert event.type == "customer.subscription.deleted"
    assert event.data.object.description == "Café"


def test_a_changed_body_another_secret_or_another_time_does_not_verify() -> None:
    header = signature_header(PAYLOAD, SecretValue(SECRET), SENT_AT)
    changed = PAYLOAD.replace(b"sub_1", b"sub_2")
    assert not receiver_verifies(changed, header)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(changed, header, SECRET, tolerance=0)
    assert not receiver_verifies(PAYLOAD, header, "whsec_other")
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.Webhook.construct_event(PAYLOAD, header, "whsec_other", tolerance=0)
    # The signature is bound to its timestamp: the same v1 under another t fails.
    moved = header.replace(f"t={SENT_AT}", f"t={SENT_AT + 1}")
    assert not receiver_verifies(PAYLOAD, moved)


def test_a_redelivery_outside_the_receivers_tolerance_is_refused() -> None:
    # Recovery signs at send time, never at the event's `created`: an old time is refused.
    stale = signature_header(PAYLOAD, SecretValue(SECRET), CREATED)
    assert not receiver_verifies(PAYLOAD, stale)


def test_a_negative_timestamp_is_refused() -> None:
    with pytest.raises(ValueError, match="`timestamp` must be a Unix time"):
        signature_header(PAYLOAD, SecretValue(SECRET), -1)
