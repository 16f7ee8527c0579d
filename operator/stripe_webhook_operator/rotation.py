"""The rotation state machine: which phase comes next and what starts a rotation. Pure.

A new webhook and every rotation walk the same phases (DESIGN.md "Rotation protocol"), kept in
`status.rotation` so that a restarted operator resumes where the last one stopped:

    Idle ──trigger──> Creating ──endpoint created disabled, both secrets written──> Propagating
      ^                                                                                 │
      │                                          receiver confirmed (or none configured) │
      │                                                                                 v
      └──overlap over: old endpoint deleted── Overlap <──new endpoint enabled── Enabling
                                              (skipped when there is no old endpoint)

Triggers are looked at only in Idle, so a request that arrives mid-rotation waits for the
running one to finish (queued, never merged); an emergency request (overlap 0) cuts a running
overlap short. The annotation value that started a rotation is kept in `status.rotation.request`
so the same value never starts another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from stripe_webhook_operator import constants as c
from stripe_webhook_operator.durations import parse_duration
from stripe_webhook_operator.manifests import WebhookSpec

IDLE: Final = "Idle"
CREATING: Final = "Creating"
PROPAGATING: Final = "Propagating"
ENABLING: Final = "Enabling"
OVERLAP: Final = "Overlap"

# Why a new secret version is made.
CREATED: Final = "Created"
REQUESTED: Final = "Requested"
SCHEDULED: Final = "Scheduled"
API_VERSION_CHANGED: Final = "ApiVersionChanged"
CONNECT_CHANGED: Final = "ConnectChanged"
SECRET_LOST: Final = "SecretLost"
ENDPOINT_DELETED: Final = "EndpointDeleted"


@dataclass(frozen=True)
class Trigger:
    """A reason to make a new secret version, with the overlap the old one keeps."""

    reason: str
    overlap: float
    request: str | None = None

    def describe(self) -> str:
        """Return a sentence for Events."""
        return {
            CREATED: "the StripeWebhook is new",
            REQUESTED: f"the annotation `{c.ANNOTATION_ROTATE}` asked for it",
            SCHEDULED: "`spec.rotation.every` has passed since the last rotation",
            API_VERSION_CHANGED: "`spec.stripeApiVersion` changed and Stripe cannot update it",
            CONNECT_CHANGED: "`spec.connect` changed and Stripe cannot update it",
            SECRET_LOST: "the signing secret in the webhook's Secret is lost",
            ENDPOINT_DELETED: "the Stripe endpoint was deleted outside the operator",
        }[self.reason]


def phase_of(status: Mapping[str, Any]) -> str:
    """Return the rotation phase recorded in status (Idle when none runs)."""
    return str((status.get("rotation") or {}).get("phase") or IDLE)


def parse_time(value: object) -> datetime | None:
    """Return an RFC 3339 timestamp from status as an aware datetime, or None."""
    if not value:
        return None
    return datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def requested_overlap(annotations: Mapping[str, str], spec: WebhookSpec) -> float:
    """Return the overlap of a requested rotation: the annotation's, else the spec's."""
    raw = annotations.get(c.ANNOTATION_ROTATE_OVERLAP)
    if raw:
        try:
            return parse_duration(raw)
        except ValueError:
            return spec.rotation_overlap
    return spec.rotation_overlap


def pending_request(annotations: Mapping[str, str], status: Mapping[str, Any]) -> str | None:
    """Return the rotate annotation's value if it is one not handled yet."""
    value = annotations.get(c.ANNOTATION_ROTATE)
    handled = (status.get("rotation") or {}).get("request")
    if value and value != handled:
        return value
    return None


def choose_trigger(
    spec: WebhookSpec,
    status: Mapping[str, Any],
    annotations: Mapping[str, str],
    now: datetime,
) -> Trigger | None:
    """Return what should start a rotation of a live, healthy endpoint now, if anything."""
    request = pending_request(annotations, status)
    if request is not None:
        return Trigger(REQUESTED, requested_overlap(annotations, spec), request)
    applied = (status.get("rotation") or {}).get("applied") or {}
    if applied.get("apiVersion") and applied["apiVersion"] != spec.api_version:
        return Trigger(API_VERSION_CHANGED, spec.rotation_overlap)
    if "connect" in applied and bool(applied["connect"]) != spec.connect:
        return Trigger(CONNECT_CHANGED, spec.rotation_overlap)
    last = parse_time(status.get("lastRotationTime"))
    if spec.rotation_every and last and now >= last + timedelta(seconds=spec.rotation_every):
        return Trigger(SCHEDULED, spec.rotation_overlap)
    return None


def cuts_overlap_short(
    spec: WebhookSpec, status: Mapping[str, Any], annotations: Mapping[str, str]
) -> bool:
    """Return whether an emergency request (overlap 0) should end a running overlap now."""
    return (
        pending_request(annotations, status) is not None
        and requested_overlap(annotations, spec) == 0
    )


def start(
    status: Mapping[str, Any], trigger: Trigger, old_endpoint_id: str | None, version: int
) -> dict[str, Any]:
    """Return `status.rotation` for a rotation to secret version `version`."""
    previous = dict(status.get("rotation") or {})
    return {
        "phase": CREATING,
        "trigger": trigger.reason,
        "targetVersion": version,
        "overlapSeconds": trigger.overlap,
        "oldEndpointId": old_endpoint_id,
        "newEndpointId": None,
        "request": trigger.request if trigger.request is not None else previous.get("request"),
        "applied": previous.get("applied"),
    }


def next_version(status: Mapping[str, Any], seen_versions: list[int]) -> int:
    """Return the secret version a new endpoint gets: above every version seen so far."""
    return max([int(status.get("secretVersion") or 0), *seen_versions]) + 1
