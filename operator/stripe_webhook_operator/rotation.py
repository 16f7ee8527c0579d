"""The rotation state machine: every transition, as a pure function from where the rotation
stands (rotation_status.State) and what was observed (rotation_steps.Observed) to the next step
(rotation_steps.Step). No I/O here; reconcile.py carries out each step it is given and asks
again.

A new webhook and every rotation walk the same steps (DESIGN.md "Rotation protocol"), recorded
in status (rotation_status.py) so that a restarted operator resumes where the last one stopped:

    Idle ──trigger──> Creating ──endpoint created disabled, both secrets written──> Propagating
      ^                                                                                 │
      │                                          receiver confirmed (or none configured) │
      │                                                                                 v
      └──overlap over: old endpoint deleted── Overlap <──new endpoint enabled── Enabling
                                              (skipped when there is no old endpoint)

Each step either looks at something (the Secret, an endpoint in Stripe), does one thing whose
outcome the next call reads (create, disable, probe, enable), or writes the next state. A
crash anywhere leaves the last state written: Creating replays the create with the same
Idempotency-Key (Stripe answers with the same endpoint and secret), Propagating asks the
receiver again, Enabling enables again, Overlap deletes the old endpoint again (gone is done).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import constants as c
from stripe_webhook_operator import manifests
from stripe_webhook_operator import rotation_status as rs
from stripe_webhook_operator import triggers as t
from stripe_webhook_operator.manifests import SigningKeys, StripeEndpoint, WebhookSpec
from stripe_webhook_operator.rotation_status import State
from stripe_webhook_operator.rotation_steps import (
    Adopt,
    Begin,
    CreateEndpoint,
    DisableEndpoint,
    EnableEndpoint,
    Event,
    FinishOverlap,
    ListOwnEndpoints,
    LookUpEndpoint,
    Observed,
    Patch,
    Probe,
    ReadSecret,
    Record,
    Settle,
    Step,
    Unseen,
    WaitForReceiver,
    WriteSecrets,
)
from stripe_webhook_operator.times import rfc3339

# The old endpoint is deleted this long (at most a quarter of the overlap) before its secret
# stops verifying: deleted only at the end, it would go on signing deliveries with a secret
# the receiver already refuses.
OLD_ENDPOINT_LEAD: Final = 5.0
# Which secret the webhook's Secret keeps as the previous one while the new one takes over.
KEEP_CURRENT: Final = "current"  # the signing secret it holds now (of the old endpoint)
KEEP_PREVIOUS: Final = "previous"  # the previous one it holds (the new secret is written)


def next_step(state: State, seen: Observed) -> Step:
    """Return what to do next for a StripeWebhook whose rotation is at `state`."""
    if state.step == rs.CREATING:
        return _creating(state, seen)
    if state.step == rs.PROPAGATING:
        return _propagating(state, seen)
    if state.step == rs.ENABLING:
        return _enabling(state, seen)
    if state.endpoint_id is None:
        return _adopt_or_create(state, seen)
    return _settled(state, seen, state.endpoint_id)


def next_version(current: int, seen_versions: Sequence[int]) -> int:
    """Return the secret version a new endpoint gets: above every version seen so far."""
    return max([current, *seen_versions]) + 1


def old_endpoint_deadline(state: State) -> datetime | None:
    """Return when the overlap's old endpoint goes: a little before its secret expires."""
    if state.previous_expires is None:
        return None
    return state.previous_expires - timedelta(seconds=min(OLD_ENDPOINT_LEAD, state.overlap / 4))


def seconds_until(deadline: datetime, now: datetime) -> float:
    """Return how long to wait for `deadline` (just past it, so it has come when woken)."""
    return max((deadline - now).total_seconds(), 0.0) + 0.1


def kept_secret(keys: SigningKeys | None, state: State, new_endpoint_id: str) -> str | None:
    """Return which secret of the Secret stays as the previous one (None: none stays)."""
    if keys is None or state.overlap <= 0 or not state.old_endpoint_id:
        return None
    if keys.endpoint_id == state.old_endpoint_id:
        return KEEP_CURRENT
    if keys.endpoint_id == new_endpoint_id:
        return KEEP_PREVIOUS  # a replay after the Secret was already written
    return None


def _adopt_or_create(state: State, seen: Observed) -> Step:
    """No endpoint on record: adopt one tagged with our uid whose secret we hold, or create."""
    if isinstance(seen.keys, Unseen):
        return ReadSecret()
    keys = seen.keys
    if isinstance(seen.own, Unseen) and (keys is not None or state.left_traces):
        return ListOwnEndpoints()
    own = () if isinstance(seen.own, Unseen) else seen.own
    request = seen.annotations.get(c.ANNOTATION_ROTATE)
    for endpoint in own:
        if keys is not None and keys.endpoint_id == endpoint.id:
            return _adopt(endpoint, request, seen.spec)
    # Endpoints tagged with our uid whose secret is lost are replaced: they go at enable time
    # (the first as "old", with no overlap) and in the duplicate sweep of later passes.
    trigger = t.Trigger(t.CREATED if not own else t.SECRET_LOST, 0.0, request)
    old = own[0].id if own else None
    return _begin(state, seen, trigger, old, [e.secret_version or 0 for e in own])


def _adopt(endpoint: StripeEndpoint, request: str | None, spec: WebhookSpec) -> Adopt:
    version = endpoint.secret_version or 1
    fields = {
        "endpointId": endpoint.id,
        "secretVersion": version,
        rs.REQUEST: request,
        rs.API_VERSION: endpoint.api_version or spec.api_version,
        rs.CONNECT: spec.connect,
        **dict.fromkeys(rs.IN_FLIGHT),
    }
    return Adopt(endpoint.id, Patch(fields, (rs.rotating(rs.IDLE, version),)))


def _begin(
    state: State,
    seen: Observed,
    trigger: t.Trigger,
    old: str | None,
    seen_versions: Sequence[int],
    forget: Record | None = None,
) -> Begin:
    """Start a rotation (or the first version): recorded before anything is created."""
    version = next_version(state.secret_version, seen_versions)
    fields = {
        rs.TRIGGER: trigger.reason,
        rs.REQUEST: trigger.request if trigger.request is not None else state.request,
        rs.OVERLAP_SECONDS: trigger.overlap,
        rs.TARGET_VERSION: version,
        rs.OLD_ENDPOINT: old,
        rs.NEW_ENDPOINT: None,
        rs.PREVIOUS_KEPT: None,
        rs.PARAMS: manifests.create_params(seen.spec, seen.cluster_id, version),
    }
    conditions = [rs.rotating(rs.CREATING, version)]
    events: tuple[Event, ...] = ()
    if trigger.reason == t.CREATED:
        creating = "Creating the Stripe endpoint."
        conditions[:0] = [
            cond.Condition(c.CONDITION_READY, cond.FALSE, cond.CREATING, creating),
            cond.Condition(c.CONDITION_SYNCED, cond.FALSE, cond.CREATING, creating),
        ]
    else:
        events = (
            Event(
                "RotationStarted",
                f"Rotating to secret version {version} because {trigger.describe()}; the old "
                f"secret stays valid for {int(trigger.overlap)} s after the new one is written.",
            ),
        )
    return Begin(trigger, version, Patch(fields, tuple(conditions)), events, forget)


def _settled(state: State, seen: Observed, endpoint_id: str) -> Step:
    """Idle or Overlap: end an overlap that is over, start a rotation that is due, or settle."""
    if isinstance(seen.endpoint, Unseen):
        return LookUpEndpoint(endpoint_id)
    if seen.endpoint is None:
        forget = Record(
            Patch({"endpointId": None, "stripeStatus": None, "previousEndpointId": None}),
            (
                Event(
                    cond.ENDPOINT_DELETED,
                    f"Stripe endpoint {endpoint_id} no longer exists; creating a new one.",
                    warning=True,
                ),
            ),
        )
        trigger = t.Trigger(t.ENDPOINT_DELETED, 0.0)
        return _begin(state, seen, trigger, None, [], forget)
    endpoint = seen.endpoint
    if isinstance(seen.keys, Unseen):
        return ReadSecret()
    if seen.keys is None or seen.keys.endpoint_id != endpoint.id:
        return _begin(state, seen, t.Trigger(t.SECRET_LOST, 0.0), endpoint.id, [])
    in_overlap = state.step == rs.OVERLAP
    deadline = old_endpoint_deadline(state) if in_overlap else None
    if in_overlap:
        if (
            deadline is None
            or seen.now >= deadline
            or t.cuts_overlap_short(seen.spec, state, seen.annotations)
        ):
            return _finish_overlap(state, seen.keys)
    else:
        due = t.choose_trigger(seen.spec, state, seen.annotations, seen.now)
        if due is not None:
            return _begin(state, seen, due, endpoint.id, [])
    expires = state.previous_expires if in_overlap else None
    return Settle(endpoint, in_overlap, expires, deadline)


def _finish_overlap(state: State, keys: SigningKeys) -> FinishOverlap:
    old = state.previous_endpoint_id
    done = Record(
        Patch(
            {"previousEndpointId": None, "previousSecretExpiresAt": None},
            (rs.rotating(rs.IDLE, state.secret_version),),
        ),
        (
            Event(
                "RotationCompleted",
                f"Secret version {state.secret_version} is the only one accepted now.",
            ),
        ),
    )
    delete = old if old and old != state.status_endpoint_id else None
    return FinishOverlap(delete, keys.previous is not None, state.livemode, done)


def _creating(state: State, seen: Observed) -> Step:
    """Creating: create (or replay) the endpoint, disable it, write both secrets."""
    version = state.target_version
    if isinstance(seen.keys, Unseen):
        return ReadSecret()  # also refuses a Secret that is not ours, before Stripe is asked
    if seen.seen_versions is not None:
        # The key was used with other parameters (status lost while the spec changed): that
        # endpoint's secret cannot be had again, so make the next version and drop the rest.
        retarget = next_version(version, seen.seen_versions)
        again = {rs.TARGET_VERSION: retarget, rs.PARAMS: None}
        return Record(Patch(again, (rs.rotating(rs.CREATING, retarget),)))
    if seen.created is None:
        key = manifests.idempotency_key(seen.spec.uid, version)
        params = state.params or manifests.create_params(seen.spec, seen.cluster_id, version)
        return CreateEndpoint(version, key, params)
    endpoint = seen.created.endpoint
    if endpoint.status != "disabled":
        return DisableEndpoint(endpoint.id)
    keep = kept_secret(seen.keys, state, endpoint.id)
    # The old secret gets no end yet: until the new endpoint is enabled the old endpoint is
    # the only one Stripe delivers to, however long propagation takes. The overlap starts at
    # the enable; counted from here, a slow receiver would refuse the old endpoint's
    # deliveries and their events would be lost with it.
    fields: dict[str, Any] = {
        rs.NEW_ENDPOINT: endpoint.id,
        rs.PREVIOUS_KEPT: keep is not None,
        "secretName": seen.spec.secret_name,
    }
    if seen.handshake:
        event = Event(
            "NewEndpointCreated",
            f"Created Stripe endpoint {endpoint.id} (secret version {version}), disabled until "
            "the receiver holds its secret.",
        )
        then = Record(Patch(fields, (rs.rotating(rs.PROPAGATING, version),)), (event,))
        return WriteSecrets(endpoint.id, keep, then)
    # Nothing to wait for: straight on to the enable.
    enabling = Patch(fields, (cond.propagated(False), rs.rotating(rs.ENABLING, version)))
    if state.old_endpoint_id:
        event = Event(
            "NewEndpointCreated",
            f"Created Stripe endpoint {endpoint.id} (secret version {version}); it is enabled "
            "next.",
        )
        return WriteSecrets(endpoint.id, keep, Record(enabling, (event,)))
    # No old endpoint delivers meanwhile: should this pass end before its next status write,
    # the next one replays the create (same key, same endpoint and secret). The enable's
    # Event says it all.
    return WriteSecrets(endpoint.id, keep, Record(enabling, durable=False))


def _propagating(state: State, seen: Observed) -> Step:
    """Propagating: wait until every receiver replica lists the new secret's fingerprint."""
    version = state.target_version
    if isinstance(seen.keys, Unseen):
        return ReadSecret()
    if seen.keys is None or seen.keys.endpoint_id != state.new_endpoint_id:
        # The Secret was lost mid-rotation: replaying the create rewrites it.
        return Record(Patch(conditions=(rs.rotating(rs.CREATING, version),)))
    if not seen.handshake:
        enabling = (cond.propagated(False), rs.rotating(rs.ENABLING, version))
        return Record(Patch(conditions=enabling))
    if seen.probe is None:
        return Probe()
    if not seen.probe.confirmed:
        return WaitForReceiver(Patch(conditions=(cond.waiting_for_receiver(seen.probe.detail),)))
    detail = seen.probe.detail
    confirmed = (cond.propagated(True, f" ({detail})"), rs.rotating(rs.ENABLING, version))
    return Record(
        Patch(conditions=confirmed),
        (Event("SecretPropagated", f"The receiver holds secret version {version} ({detail})."),),
    )


def _enabling(state: State, seen: Observed) -> Step:
    """Enabling: enable the new endpoint and make it the current one."""
    new_id = str(state.new_endpoint_id)
    if seen.enabled is None:
        return EnableEndpoint(new_id, seen.spec.disabled)
    endpoint = seen.enabled
    old_id = state.old_endpoint_id
    version = state.target_version
    params = state.params or {}
    stamp = rfc3339(seen.now)
    overlap_end = seen.now + timedelta(seconds=state.overlap)
    expires = rfc3339(overlap_end) if state.previous_kept else (stamp if old_id else None)
    fields = {
        **dict.fromkeys(rs.IN_FLIGHT),
        rs.API_VERSION: params.get("api_version", seen.spec.api_version),
        rs.CONNECT: bool(params.get("connect", False)),
        "endpointId": new_id,
        "secretVersion": version,
        "lastRotationTime": stamp,
        "previousEndpointId": old_id,
        "previousSecretExpiresAt": expires,
        "url": endpoint.url,
        "stripeStatus": endpoint.status,
        "livemode": endpoint.livemode,
    }
    step = rs.OVERLAP if old_id else rs.IDLE
    patch = Patch(fields, (rs.rotating(step, version, expires),))
    events: tuple[Event, ...] = ()
    if state.trigger == t.CREATED:
        events = (Event("EndpointEnabled", f"Stripe endpoint {new_id} is live."),)
    elif not old_id:
        events = (Event("RotationCompleted", f"Secret version {version} is live."),)
    # With an old endpoint, the overlap's clock starts at this enable: on record before
    # anything else happens. Without, the rest of this pass writes it with the Ready
    # condition; should the pass end first, the next one enables again (no change in Stripe).
    return Record(patch, events, durable=old_id is not None)
