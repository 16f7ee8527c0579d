"""Stripe's webhook signature: `t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.

One `v1` entry per live secret of the endpoint, so a receiver holding any of them accepts it.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence


def signature_header(body: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """Return the `Stripe-Signature` value for `body` signed at `timestamp`."""
    signed = str(timestamp).encode() + b"." + body
    parts = [f"t={timestamp}"]
    for secret in secrets:
        digest = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
        parts.append(f"v1={digest}")
    return ",".join(parts)
