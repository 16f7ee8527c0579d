"""Stripe signature checking: pure functions, constant time over every secret and signature.

A `Stripe-Signature` header reads `t=<unix seconds>,v1=<hex>,v1=<hex>,...`: one `v1` per live
secret of the endpoint, each the HMAC-SHA256 of `<t>.<raw body>` keyed by the secret. We
compare every `v1` entry with every unexpired secret and never stop at the first match, so
the time taken says nothing about which entry or secret matched.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

SCHEME = "v1"
MAX_HEADER_LENGTH = 8192
MAX_SIGNATURES = 32
MAX_TIMESTAMP_DIGITS = 12
# Every `SignatureError.reason`, each a code of the 400 answer (docs/receiver-api.md).
REASONS = frozenset(
    {
        "missing_header",
        "malformed_header",
        "bad_timestamp",
        "no_v1_signature",
        "timestamp_outside_tolerance",
        "no_matching_signature",
    }
)


class SecretText:
    """A secret string whose repr and str never show it; `reveal()` gives the value."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one place that needs it (an HMAC key)."""
        return self._value

    def __repr__(self) -> str:
        return "SecretText('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretText) and hmac.compare_digest(
            self._value.encode(), other._value.encode()
        )

    def __hash__(self) -> int:
        return hash(fingerprint(self._value))


def fingerprint(secret: str) -> str:
    """Return the short public name of a secret: the first 16 hex digits of its SHA-256."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SigningSecret:
    """One endpoint signing secret and the moment after which it no longer verifies."""

    secret: SecretText
    not_after: datetime | None = None
    fingerprint: str = field(default="", compare=False)
    key: bytes = field(default=b"", repr=False, compare=False)

    @classmethod
    def of(cls, secret: str, not_after: datetime | None = None) -> SigningSecret:
        """Wrap a `whsec_...` value with its expiry (None: no expiry)."""
        return cls(SecretText(secret), not_after, fingerprint(secret), secret.encode())

    def live_at(self, now: datetime) -> bool:
        """Return whether this secret still verifies at `now`."""
        return self.not_after is None or now <= self.not_after


class SignatureError(ValueError):
    """The `Stripe-Signature` header does not prove the body came from Stripe.

    `reason` is a stable snake_case code for metrics and error bodies.
    """

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True)
class ParsedHeader:
    timestamp: int
    signatures: tuple[bytes, ...]


def parse_header(header: str | None) -> ParsedHeader:
    """Split a `Stripe-Signature` header into its timestamp and `v1` signatures."""
    if not header:
        raise SignatureError(
            "missing_header",
            "The `Stripe-Signature` header is missing; send the header Stripe computed.",
        )
    if len(header) > MAX_HEADER_LENGTH:
        raise SignatureError(
            "malformed_header",
            f"The `Stripe-Signature` header is longer than {MAX_HEADER_LENGTH} characters; "
            "send the header Stripe computed.",
        )
    timestamps: list[str] = []
    signatures: list[bytes] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            continue
        if key == "t":
            timestamps.append(value)
        elif key == SCHEME and len(signatures) < MAX_SIGNATURES:
            signatures.append(value.encode("ascii", "replace"))
    stamp = timestamps[0] if len(timestamps) == 1 else ""
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= MAX_TIMESTAMP_DIGITS):
        raise SignatureError(
            "bad_timestamp",
            "The `Stripe-Signature` header must hold exactly one `t=` entry with a Unix time "
            "in seconds.",
        )
    if not signatures:
        raise SignatureError(
            "no_v1_signature",
            "The `Stripe-Signature` header has no `v1=` signature; only scheme `v1` is accepted.",
        )
    return ParsedHeader(int(stamp), tuple(signatures))


def compute_signature(payload: bytes, timestamp: int, key: bytes) -> bytes:
    """Return the lowercase hex `v1` signature of `payload` at `timestamp` under `key`."""
    mac = hmac.new(key, str(timestamp).encode() + b"." + payload, hashlib.sha256)
    return mac.hexdigest().encode()


def verify(
    payload: bytes,
    header: str | None,
    secrets: Sequence[SigningSecret],
    *,
    now: datetime,
    tolerance: int,
) -> SigningSecret:
    """Return the secret whose signature is in `header`, or raise SignatureError.

    Only secrets live at `now` count; the timestamp may differ from `now` by at most
    `tolerance` seconds in either direction (a future timestamp is as suspect as an old one).
    """
    parsed = parse_header(header)
    age = int(now.timestamp()) - parsed.timestamp
    if abs(age) > tolerance:
        where = "in the past" if age > 0 else "in the future"
        raise SignatureError(
            "timestamp_outside_tolerance",
            f"The signature timestamp is {abs(age)} s {where}, beyond the tolerance of "
            f"{tolerance} s; check the sender's clock or send a fresh event.",
        )
    matched: SigningSecret | None = None
    for secret in secrets:
        if not secret.live_at(now):
            continue
        expected = compute_signature(payload, parsed.timestamp, secret.key)
        hit = False
        for candidate in parsed.signatures:
            hit |= hmac.compare_digest(expected, candidate)
        if hit and matched is None:
            matched = secret
    if matched is None:
        raise SignatureError(
            "no_matching_signature",
            "No `v1` signature matches a current signing secret of this webhook; "
            "check that the endpoint's secret has reached the receiver.",
        )
    return matched


def sign(payload: bytes, secrets: Sequence[str], timestamp: int) -> str:
    """Return a `Stripe-Signature` header for `payload`, one `v1` per secret (as Stripe does)."""
    parts = [f"t={timestamp}"]
    parts += [
        f"{SCHEME}={compute_signature(payload, timestamp, s.encode()).decode()}" for s in secrets
    ]
    return ",".join(parts)
