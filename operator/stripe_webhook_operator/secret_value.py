"""A wrapper for secret strings (signing secrets, API keys, receipts keys) with a redacted repr."""

from __future__ import annotations

import hashlib
from typing import Final

REDACTED: Final = "**********"


class SecretValue:
    """Hold a secret string; `str()` and `repr()` never show it, `.reveal()` does."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """Return the secret itself, for the one place that must send or store it."""
        return self._value

    def fingerprint(self) -> str:
        """Return the fingerprint the receiver lists: the first 16 hex digits of its SHA-256."""
        return hashlib.sha256(self._value.encode()).hexdigest()[:16]

    def sha256(self) -> str:
        """Return the full SHA-256 hex digest (for `receipts_api_key_sha256`)."""
        return hashlib.sha256(self._value.encode()).hexdigest()

    def __repr__(self) -> str:
        return f"SecretValue('{REDACTED}')"

    def __str__(self) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretValue) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)

    def __bool__(self) -> bool:
        return bool(self._value)
