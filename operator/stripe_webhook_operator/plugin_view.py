"""What `kubectl stripe` shows of StripeWebhooks: the `status` table (with the `Recovered`
condition and the number of open recovery gaps; plugin_recovery.py lists the gaps), and the
progress of a rotation that `rotate --wait` follows. Pure: status in, text out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from stripe_webhook_operator.constants import (
    CONDITION_READY,
    CONDITION_RECOVERED,
    CONDITION_ROTATING,
    CONDITION_SECRET_PROPAGATED,
    CONDITION_SYNCED,
    ROTATION_STEP_IDLE,
    ROTATION_STEP_OVERLAP,
    STATUS_RECOVERY,
    STATUS_ROTATION_REQUEST,
)
from stripe_webhook_operator.times import parse_timestamp

NONE = "<none>"
STATUS_HEADERS = (
    "NAMESPACE",
    "NAME",
    "ENDPOINT",
    "STRIPE STATUS",
    "SECRET VERSION",
    "LAST ROTATION",
    "OVERLAP ENDS",
    "READY",
    "SYNCED",
    "SECRETPROPAGATED",
    "ROTATING",
    "RECOVERED",
    "OPEN GAPS",
)
# The operator's overlap bound for scheduled rotations is 720h; a request may go down to 0.


def condition_cell(conditions: Sequence[Mapping[str, Any]], condition_type: str) -> str:
    """Return 'True', or the status followed by its reason, e.g. 'False (ApiKeyMissing)'."""
    for condition in conditions:
        if condition.get("type") == condition_type:
            state = str(condition.get("status") or "Unknown")
            reason = condition.get("reason")
            if state == "True" or not reason:
                return state
            return f"{state} ({reason})"
    return NONE


def rotation_step(conditions: Sequence[Mapping[str, Any]]) -> str:
    """Return the rotation's current step: the `Rotating` condition's reason while it is
    True, else 'Idle'."""
    for condition in conditions:
        if condition.get("type") == CONDITION_ROTATING and condition.get("status") == "True":
            return str(condition.get("reason") or ROTATION_STEP_IDLE)
    return ROTATION_STEP_IDLE


def status_row(webhook: Mapping[str, Any]) -> list[str]:
    """Return the cells of one StripeWebhook's line in the `status` table."""
    metadata = webhook.get("metadata") or {}
    status = webhook.get("status") or {}
    conditions = status.get("conditions") or []

    def text(key: str) -> str:
        value = status.get(key)
        return NONE if value is None or value == "" else str(value)

    rotating = any(item.get("type") == CONDITION_ROTATING for item in conditions)
    return [
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
        text("endpointId"),
        text("stripeStatus"),
        text("secretVersion"),
        text("lastRotationTime"),
        text("previousSecretExpiresAt"),
        condition_cell(conditions, CONDITION_READY),
        condition_cell(conditions, CONDITION_SYNCED),
        condition_cell(conditions, CONDITION_SECRET_PROPAGATED),
        rotation_step(conditions) if rotating else NONE,
        condition_cell(conditions, CONDITION_RECOVERED),
        open_gaps_cell(status),
    ]


def open_gaps_cell(status: Mapping[str, Any]) -> str:
    """Return how many recovery gaps are open, e.g. '2', or '<none>'; `status` lists
    them below the table."""
    gaps = (status.get(STATUS_RECOVERY) or {}).get("gaps") or []
    return str(len(gaps)) if gaps else NONE


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Lay rows out in left-aligned columns three spaces apart, as kubectl does."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = []
    for row in [list(headers), *rows]:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("   ".join(padded).rstrip())
    return "\n".join(lines) + "\n"


def status_table(webhooks: Sequence[Mapping[str, Any]]) -> str:
    """Return the `status` table for these StripeWebhooks, sorted by namespace and name."""
    rows = sorted((status_row(webhook) for webhook in webhooks), key=lambda row: (row[0], row[1]))
    return format_table(STATUS_HEADERS, rows)


@dataclass(frozen=True)
class RotationProgress:
    """What `rotate --wait` reads from a StripeWebhook's status at one moment."""

    secret_version: int
    step: str
    request: str | None
    ready: str
    secret_propagated: str
    overlap_ends: str | None

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> RotationProgress:
        """Read the progress fields out of a StripeWebhook's `status`."""
        conditions = status.get("conditions") or []
        return cls(
            secret_version=int(status.get("secretVersion") or 0),
            step=rotation_step(conditions),
            request=status.get(STATUS_ROTATION_REQUEST),
            ready=condition_cell(conditions, CONDITION_READY),
            secret_propagated=condition_cell(conditions, CONDITION_SECRET_PROPAGATED),
            overlap_ends=status.get("previousSecretExpiresAt"),
        )

    def is_done(self, start_version: int, request: str) -> bool:
        """Whether the rotation asked for with `request` has its new endpoint live.

        The operator bumps `secretVersion` when it enables the new endpoint, and then moves
        the `Rotating` condition to 'Overlap' (or to False, 'Idle', with no overlap). When it
        records which request it is serving, a rotation queued behind another one is only
        done when that field names this request.
        """
        if self.secret_version <= start_version:
            return False
        if self.request is not None and self.request != request:
            return False
        return self.step in (ROTATION_STEP_IDLE, ROTATION_STEP_OVERLAP)

    def describe(self) -> str:
        """One progress line for people."""
        return (
            f"secret version {self.secret_version}, rotation step {self.step}, "
            f"Ready {self.ready}, SecretPropagated {self.secret_propagated}"
        )


def done_sentence(namespace: str, name: str, progress: RotationProgress, now: datetime) -> str:
    """Say that the rotation is done and whether the previous secret is still accepted."""
    previous = "the previous secret is no longer accepted"
    if progress.overlap_ends and _later_than(progress.overlap_ends, now):
        previous = f"the previous secret is accepted until {progress.overlap_ends}"
    return (
        f"Rotation of '{namespace}/{name}' done: secret version {progress.secret_version} "
        f"is live; {previous}.\n"
    )


def _later_than(text: str, now: datetime) -> bool:
    """Whether the RFC 3339 time `text` is after `now`; an unreadable one counts as past."""
    try:
        moment = parse_timestamp(text)
    except ValueError:
        return False
    return moment is not None and moment > now
