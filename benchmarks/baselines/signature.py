"""The signature check both naive baselines share: what a developer writes from Stripe's docs."""

from __future__ import annotations

import hashlib
import hmac
import time

TOLERANCE = 300


def verified(secret: bytes, body: bytes, header: str) -> bool:
    """Return whether one `v1` entry of the header signs `body` within the tolerance."""
    fields = [part.split("=", 1) for part in header.split(",") if "=" in part]
    stamps = [value for key, value in fields if key == "t"]
    if not stamps or not stamps[0].isdigit() or abs(time.time() - int(stamps[0])) > TOLERANCE:
        return False
    expected = hmac.new(secret, stamps[0].encode() + b"." + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, value) for key, value in fields if key == "v1")
