"""Status conditions `Ready`, `Synced` and `SecretPropagated`, and the reasons they carry;
`Rotating` (whose reason is the rotation's step) is built by rotation_status.py.

Each reason is documented in docs/troubleshooting.md (what it means, what to do)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from stripe_webhook_operator import constants as c
from stripe_webhook_operator.times import rfc3339

TRUE: Final = "True"
FALSE: Final = "False"
UNKNOWN: Final = "Unknown"

# Reasons (CamelCase, one per situation a user can act on).
RECONCILED: Final = "Reconciled"
IN_SYNC: Final = "InSync"
CREATING: Final = "Creating"
CONFIRMED: Final = "ReceiverConfirmed"
WAITING_FOR_RECEIVER: Final = "WaitingForReceiver"
NO_RECEIVER_CONFIGURED: Final = "NoReceiverConfigured"
ENDPOINT_DISABLED: Final = "EndpointDisabledByStripe"
ENDPOINT_DELETED: Final = "EndpointDeletedInStripe"
URL_MISSING: Final = "UrlMissing"
DELETION_BLOCKED: Final = "DeletionBlocked"


@dataclass(frozen=True)
class Condition:
    """One condition as the operator wants it; lastTransitionTime is filled in on merge."""

    type: str
    status: str
    reason: str
    message: str


def merge(
    existing: Sequence[Mapping[str, Any]] | None,
    wanted: Iterable[Condition],
    generation: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """Return the conditions list with `wanted` applied; the transition time moves only when
    the status changes, as the Kubernetes API conventions ask."""
    by_type = {str(item.get("type")): dict(item) for item in existing or ()}
    for condition in wanted:
        previous = by_type.get(condition.type)
        changed = previous is None or previous.get("status") != condition.status
        by_type[condition.type] = {
            "type": condition.type,
            "status": condition.status,
            "reason": condition.reason,
            "message": condition.message,
            "observedGeneration": generation,
            "lastTransitionTime": rfc3339(now)
            if changed or previous is None
            else previous.get("lastTransitionTime", rfc3339(now)),
        }
    order = [
        c.CONDITION_READY,
        c.CONDITION_SYNCED,
        c.CONDITION_SECRET_PROPAGATED,
        c.CONDITION_ROTATING,
        c.CONDITION_RECOVERED,
    ]
    return sorted(by_type.values(), key=lambda item: [*order, item["type"]].index(item["type"]))


def find(conditions: Sequence[Mapping[str, Any]] | None, kind: str) -> Mapping[str, Any] | None:
    """Return the condition of type `kind`, if present."""
    for item in conditions or ():
        if item.get("type") == kind:
            return item
    return None


def failed(reason: str, message: str) -> list[Condition]:
    """Return Ready=False and Synced=False with the same reason and message."""
    return [
        Condition(c.CONDITION_READY, FALSE, reason, message),
        Condition(c.CONDITION_SYNCED, FALSE, reason, message),
    ]


def ready(message: str = "The Stripe endpoint matches the spec and is live.") -> list[Condition]:
    """Return Ready=True and Synced=True."""
    return [
        Condition(c.CONDITION_READY, TRUE, RECONCILED, message),
        Condition(c.CONDITION_SYNCED, TRUE, IN_SYNC, "Stripe matches the spec."),
    ]


def propagated(handshake: bool, fingerprint_note: str = "") -> Condition:
    """Return SecretPropagated: True once confirmed, Unknown when no receiver is configured."""
    if not handshake:
        return Condition(
            c.CONDITION_SECRET_PROPAGATED,
            UNKNOWN,
            NO_RECEIVER_CONFIGURED,
            "No `--receiver-url` is configured, so the operator cannot ask the receiver "
            "whether it holds the secret; set it to enable the readiness handshake.",
        )
    return Condition(
        c.CONDITION_SECRET_PROPAGATED,
        TRUE,
        CONFIRMED,
        f"Every receiver replica holds the current signing secret{fingerprint_note}.",
    )


def waiting_for_receiver(detail: str) -> Condition:
    """Return SecretPropagated=False while the receiver has not loaded the new secret."""
    return Condition(
        c.CONDITION_SECRET_PROPAGATED,
        FALSE,
        WAITING_FOR_RECEIVER,
        f"The receiver does not hold the new signing secret yet ({detail}); the new endpoint "
        "stays disabled until it does.",
    )
