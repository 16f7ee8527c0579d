"""Where a rotation stands, as the StripeWebhook's status records it. Pure.

The step is the reason of the `Rotating` condition: True with reason `Creating`,
`Propagating`, `Enabling` or `Overlap` while a rotation runs, False with reason `Idle` once none
does (its lastTransitionTime says when the last one started or ended). Beside it, plain fields
hold what a restarted operator needs to resume:

    rotationTrigger, rotationRequest,       the current or last rotation: why it started, the
    rotationOverlapSeconds                  annotation value it serves, the old secret's overlap
    targetSecretVersion, newEndpointId,     only until the new endpoint is enabled: the version
    oldEndpointId, previousSecretKept,      being made, its endpoint, the one it replaces, whether
    newEndpointParams                       the old secret stays, the create request to replay
    stripeApiVersion, connect               what the live endpoint was created with

The operator's 0.1 releases kept all of this in one object, `status.rotation`, with the step
in a field of its own. `read` still understands that shape, and `migration` rewrites it into
this one: the first pass over such an object writes the new fields and removes the old object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import constants as c
from stripe_webhook_operator.times import parse_timestamp

IDLE: Final = c.ROTATION_STEP_IDLE
CREATING: Final = "Creating"
PROPAGATING: Final = "Propagating"
ENABLING: Final = "Enabling"
OVERLAP: Final = c.ROTATION_STEP_OVERLAP
STEPS: Final = (IDLE, CREATING, PROPAGATING, ENABLING, OVERLAP)
# The steps before the new endpoint is enabled, while the fields of IN_FLIGHT hold.
BEFORE_ENABLE: Final = (CREATING, PROPAGATING, ENABLING)

TRIGGER: Final = "rotationTrigger"
REQUEST: Final = c.STATUS_ROTATION_REQUEST
OVERLAP_SECONDS: Final = "rotationOverlapSeconds"
TARGET_VERSION: Final = "targetSecretVersion"
NEW_ENDPOINT: Final = "newEndpointId"
OLD_ENDPOINT: Final = "oldEndpointId"
PREVIOUS_KEPT: Final = "previousSecretKept"
PARAMS: Final = "newEndpointParams"
API_VERSION: Final = "stripeApiVersion"
CONNECT: Final = "connect"
IN_FLIGHT: Final = (TARGET_VERSION, NEW_ENDPOINT, OLD_ENDPOINT, PREVIOUS_KEPT, PARAMS)
# The object the 0.1 releases wrote.
LEGACY: Final = "rotation"


@dataclass(frozen=True)
class State:
    """A StripeWebhook's rotation as its status and the operator's annotations record it."""

    step: str = IDLE
    recorded: bool = False  # a rotation or an adoption was ever written down
    trigger: str | None = None
    request: str | None = None
    overlap: float = 0.0
    target_version: int = 0
    new_endpoint_id: str | None = None
    old_endpoint_id: str | None = None
    previous_kept: bool = False
    params: Mapping[str, Any] | None = None
    applied_api_version: str | None = None
    applied_connect: bool | None = None
    # Beside the rotation's own fields: the rest of status, and the operator's annotations.
    secret_version: int = 0
    status_endpoint_id: str | None = None
    annotated_endpoint_id: str | None = None
    previous_endpoint_id: str | None = None
    previous_expires: datetime | None = None
    last_rotation: datetime | None = None
    livemode: bool = False
    pending_create: bool = False

    @property
    def endpoint_id(self) -> str | None:
        """The endpoint on record: status's, else the annotation written with it."""
        return self.status_endpoint_id or self.annotated_endpoint_id

    @property
    def left_traces(self) -> bool:
        """Whether an earlier pass may have created an endpoint for this resource.

        Every create is preceded by the pending Idempotency-Key annotation and the rotation's
        record, and that annotation leaves only in the patch that records the endpoint id:
        with none of these (and no Secret) the account cannot hold an endpoint tagged with
        this uid, and a new StripeWebhook needs no list call. (Should someone strip them by
        hand, the duplicate check of the drift pass still deletes the leftover.)"""
        return self.recorded or self.pending_create or self.endpoint_id is not None

    def known_endpoint_ids(self) -> set[str]:
        """Every endpoint id on record: current, previous, and the rotation's own."""
        ids = {
            self.status_endpoint_id,
            self.annotated_endpoint_id,
            self.previous_endpoint_id,
            self.new_endpoint_id,
            self.old_endpoint_id,
        }
        return {i for i in ids if i}


def _text(value: object) -> str | None:
    return str(value) if value else None


def _rotation_fields(source: Mapping[str, Any], step: str, recorded: bool) -> dict[str, Any]:
    """Return State's own fields from `source`, whose keys are those of the new shape."""
    in_flight = step in BEFORE_ENABLE
    connect = source.get(CONNECT)
    return {
        "step": step,
        "recorded": recorded,
        "trigger": _text(source.get(TRIGGER)),
        "request": _text(source.get(REQUEST)),
        "overlap": float(source.get(OVERLAP_SECONDS) or 0),
        "target_version": int(source.get(TARGET_VERSION) or 0) if in_flight else 0,
        "new_endpoint_id": _text(source.get(NEW_ENDPOINT)) if in_flight else None,
        "old_endpoint_id": _text(source.get(OLD_ENDPOINT)) if in_flight else None,
        "previous_kept": bool(source.get(PREVIOUS_KEPT)) if in_flight else False,
        "params": source.get(PARAMS) or None if in_flight else None,
        "applied_api_version": _text(source.get(API_VERSION)),
        "applied_connect": None if connect is None else bool(connect),
    }


def _legacy_as_fields(legacy: Mapping[str, Any]) -> dict[str, Any]:
    """Return the 0.1 object under the keys of the new shape."""
    applied = legacy.get("applied") or {}
    return {
        TRIGGER: legacy.get("trigger"),
        REQUEST: legacy.get("request"),
        OVERLAP_SECONDS: legacy.get("overlapSeconds"),
        TARGET_VERSION: legacy.get("targetVersion"),
        NEW_ENDPOINT: legacy.get("newEndpointId"),
        OLD_ENDPOINT: legacy.get("oldEndpointId"),
        PREVIOUS_KEPT: legacy.get("previousKept"),
        PARAMS: legacy.get("params"),
        API_VERSION: applied.get("apiVersion"),
        CONNECT: applied.get("connect"),
    }


def _legacy_step(legacy: Mapping[str, Any]) -> str:
    step = str(legacy.get("phase") or IDLE)
    return step if step in STEPS else IDLE


def _condition_step(status: Mapping[str, Any]) -> tuple[str, bool]:
    found = cond.find(status.get("conditions"), c.CONDITION_ROTATING)
    if found is None:
        return IDLE, False
    reason = str(found.get("reason") or IDLE)
    running = found.get("status") == cond.TRUE and reason in STEPS
    return (reason if running else IDLE), True


def read(status: Mapping[str, Any], annotations: Mapping[str, str]) -> State:
    """Return the rotation state that `status` and `annotations` record, in either shape."""
    legacy = status.get(LEGACY)
    if isinstance(legacy, Mapping) and legacy:
        own = _rotation_fields(_legacy_as_fields(legacy), _legacy_step(legacy), True)
    else:
        own = _rotation_fields(status, *_condition_step(status))
    return State(
        **own,
        secret_version=int(status.get("secretVersion") or 0),
        status_endpoint_id=_text(status.get("endpointId")),
        annotated_endpoint_id=_text(annotations.get(c.ANNOTATION_ENDPOINT_ID)),
        previous_endpoint_id=_text(status.get("previousEndpointId")),
        previous_expires=parse_timestamp(status.get("previousSecretExpiresAt")),
        last_rotation=parse_timestamp(status.get("lastRotationTime")),
        livemode=bool(status.get("livemode")),
        pending_create=bool(annotations.get(c.ANNOTATION_PENDING_IDEMPOTENCY_KEY)),
    )


def rotating(step: str, version: int, expires: str | None = None) -> cond.Condition:
    """Return the `Rotating` condition for `step` of the rotation to secret `version`."""
    messages = {
        CREATING: f"Creating the Stripe endpoint of secret version {version}; it stays "
        "disabled until its secret is in place.",
        PROPAGATING: f"Waiting until the receiver holds secret version {version}; its "
        "endpoint stays disabled until then.",
        ENABLING: f"Enabling the Stripe endpoint of secret version {version}.",
        OVERLAP: f"Secret version {version} is live; the previous secret is accepted until "
        f"{expires}, its endpoint is deleted shortly before.",
    }
    if step not in messages:
        return cond.Condition(c.CONDITION_ROTATING, cond.FALSE, IDLE, "No rotation is running.")
    return cond.Condition(c.CONDITION_ROTATING, cond.TRUE, step, messages[step])


def migration(status: Mapping[str, Any]) -> tuple[dict[str, Any], list[cond.Condition]] | None:
    """Return the status patch (and condition) that rewrites the 0.1 `status.rotation` into
    the new shape, or None when status has no such object."""
    if LEGACY not in status:
        return None
    legacy = status.get(LEGACY)
    if not isinstance(legacy, Mapping) or not legacy:
        return {LEGACY: None}, []
    step = _legacy_step(legacy)
    fields = {k: v for k, v in _legacy_as_fields(legacy).items() if v is not None}
    if step not in BEFORE_ENABLE:
        fields = {k: v for k, v in fields.items() if k not in IN_FLIGHT}
    version = int(legacy.get("targetVersion") or 0) if step in BEFORE_ENABLE else 0
    version = version or int(status.get("secretVersion") or 0)
    condition = rotating(step, version, status.get("previousSecretExpiresAt"))
    return {LEGACY: None, **fields}, [condition]
