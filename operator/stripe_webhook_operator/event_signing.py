"""Signing a redelivered event as Stripe signs a webhook delivery.

When the operator recovers an event from Stripe's Events API and delivers it to the receiver
itself, the receiver must see exactly what Stripe would have sent: a `Stripe-Signature`
header `t=<unix seconds>,v1=<hex>`, where the `v1` value is the HMAC-SHA256, keyed by the
endpoint's whole signing secret (`whsec_...` included), of the timestamp, a dot and the raw
body. The body is signed as the bytes that will be sent, so it must not be re-encoded after.
Pure functions: no clock, no I/O (the caller passes the time it sends at).
"""

from __future__ import annotations

import hashlib
import hmac

from stripe_webhook_operator.secret_value import SecretValue

SCHEME = "v1"


def signature_header(payload: bytes, secret: SecretValue, timestamp: int) -> str:
    """When redelivering `payload` at `timestamp` (Unix seconds), return the value of its
    `Stripe-Signature` header, signed with the webhook's current secret."""
    if timestamp < 0:
        raise ValueError("`timestamp` must be a Unix time in seconds, not negative.")
    signed = str(timestamp).encode() + b"." + payload
    digest = hmac.new(secret.reveal().encode(), signed, hashlib.sha256).hexdigest()
    return f"t={timestamp},{SCHEME}={digest}"
