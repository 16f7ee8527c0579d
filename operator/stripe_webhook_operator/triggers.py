"""What starts a rotation: pure checks, one after another, that say whether and why a live,
healthy endpoint gets a new secret version now (cert-manager's trigger policies are the model).

Triggers are looked at only while no rotation runs, so a request that arrives mid-rotation waits
for the running one to finish (queued, never merged); an emergency request (overlap 0) cuts a
running overlap short. The annotation value that started a rotation is kept in
`status.rotationRequest`, so the same value never starts another.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final

from stripe_webhook_operator import constants as c
from stripe_webhook_operator.manifests import WebhookSpec
from stripe_webhook_operator.rotation_status import State
from stripe_webhook_operator.times import parse_duration

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


def requested_overlap(annotations: Mapping[str, str], spec: WebhookSpec) -> float:
    """Return the overlap of a requested rotation: the annotation's, else the spec's."""
    raw = annotations.get(c.ANNOTATION_ROTATE_OVERLAP)
    if raw:
        try:
            return parse_duration(raw)
        except ValueError:
            return spec.rotation_overlap
    return spec.rotation_overlap


def pending_request(annotations: Mapping[str, str], state: State) -> str | None:
    """Return the rotate annotation's value if it is one not handled yet."""
    value = annotations.get(c.ANNOTATION_ROTATE)
    if value and value != state.request:
        return value
    return None


def choose_trigger(
    spec: WebhookSpec, state: State, annotations: Mapping[str, str], now: datetime
) -> Trigger | None:
    """Return what should start a rotation of a live, healthy endpoint now, if anything."""
    request = pending_request(annotations, state)
    if request is not None:
        return Trigger(REQUESTED, requested_overlap(annotations, spec), request)
    if state.applied_api_version and state.applied_api_version != spec.api_version:
        return Trigger(API_VERSION_CHANGED, spec.rotation_overlap)
    if state.applied_connect is not None and state.applied_connect != spec.connect:
        return Trigger(CONNECT_CHANGED, spec.rotation_overlap)
    last = state.last_rotation
    if spec.rotation_every and last and now >= last + timedelta(seconds=spec.rotation_every):
        return Trigger(SCHEDULED, spec.rotation_overlap)
    return None


def cuts_overlap_short(spec: WebhookSpec, state: State, annotations: Mapping[str, str]) -> bool:
    """Return whether an emergency request (overlap 0) should end a running overlap now."""
    return (
        pending_request(annotations, state) is not None
        and requested_overlap(annotations, spec) == 0
    )
