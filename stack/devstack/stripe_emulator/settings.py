"""The emulator's settings, from command-line flags or `STRIPE_EMULATOR_*` variables."""

from __future__ import annotations

from dataclasses import dataclass

from devstack.stripe_emulator.delivery import DEFAULT_RETRY_SCHEDULE
from devstack.stripe_emulator.versions import DEFAULT_API_VERSION


@dataclass(frozen=True)
class Settings:
    """`rate_limit` is requests per second per account (None: unlimited); `retry_schedule`
    the waits in seconds between delivery attempts; `delivery_timeout` per attempt;
    `delivery_domain` a DNS domain whose hosts may be sent events besides loopback ones (the
    node's `svc.cluster.local`, when the emulator runs inside the node's namespace)."""

    rate_limit: float | None = None
    retry_schedule: tuple[float, ...] = DEFAULT_RETRY_SCHEDULE
    delivery_timeout: float = 10.0
    default_api_version: str = DEFAULT_API_VERSION
    delivery_domain: str | None = None


def parse_schedule(text: str) -> tuple[float, ...]:
    """Parse `0.2,0.5,1` into waits in seconds; an empty string means no retries."""
    waits = tuple(float(part) for part in text.split(",") if part.strip())
    if any(wait < 0 for wait in waits):
        raise ValueError(f"retry waits must not be negative: {text!r}")
    return waits
