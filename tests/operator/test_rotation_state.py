"""The rotation state machine without a cluster, step by step: what starts a rotation, every
transition of every step (rotation.next_step), what a crash at each point leaves and how the
next pass resumes from it, and the status shape of the 0.1 releases read and rewritten once.

Nothing here reads the clock: NOW is a fixed moment and every other time is derived from it.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import constants as c
from stripe_webhook_operator import manifests, rotation, triggers
from stripe_webhook_operator import rotation_status as rs
from stripe_webhook_operator import rotation_steps as steps
from stripe_webhook_operator.manifests import SigningKeys, StripeEndpoint
from stripe_webhook_operator.receiver_probe import ProbeResult
from stripe_webhook_operator.rotation_status import State
from stripe_webhook_operator.secret_value import SecretValue
from stripe_webhook_operator.times import rfc3339

NOW = datetime(2031, 5, 4, 12, 0, tzinfo=UTC)
HOUR_AGO = NOW - timedelta(hours=1)
API_VERSION = c.DEFAULT_STRIPE_API_VERSION


def spec(**fields: Any) -> manifests.WebhookSpec:
    body = {
        "metadata": {"namespace": "ns", "name": "app", "uid": "u"},
        "spec": {"apiKeySecretRef": {"name": "k", "key": "k"}, **fields},
    }
    return manifests.parse_webhook(body, "https://h.example.com")


def endpoint(endpoint_id: str, status: str = "enabled", version: int | None = None) -> Any:
    metadata = {c.STRIPE_METADATA_UID: "u"}
    if version is not None:
        metadata[c.STRIPE_METADATA_SECRET_VERSION] = str(version)
    return StripeEndpoint(
        endpoint_id, "https://h.example.com/x", status, (), None, metadata, API_VERSION, False
    )


def keys(endpoint_id: str, previous: bool = False) -> SigningKeys:
    old = SecretValue("whsec_older") if previous else None
    return SigningKeys(SecretValue("whsec_now"), SecretValue("rk_1"), endpoint_id, old)


def seen(**fields: Any) -> steps.Observed:
    values: dict[str, Any] = {
        "spec": spec(),
        "annotations": {},
        "now": NOW,
        "handshake": True,
        "cluster_id": "cl",
    }
    values.update(fields)
    return steps.Observed(**values)


def live(**fields: Any) -> State:
    """A healthy webhook at secret version 1, its last request 'r1' handled."""
    values: dict[str, Any] = {
        "recorded": True,
        "request": "r1",
        "applied_api_version": API_VERSION,
        "applied_connect": False,
        "secret_version": 1,
        "status_endpoint_id": "we_1",
        "last_rotation": HOUR_AGO,
    }
    values.update(fields)
    return State(**values)


def rotating(step: str, **fields: Any) -> State:
    """A rotation of the live webhook to version 2 (overlap 60 s), at `step`."""
    values: dict[str, Any] = {
        "step": step,
        "trigger": triggers.REQUESTED,
        "request": "r2",
        "overlap": 60.0,
        "target_version": 2,
        "old_endpoint_id": "we_1",
        "params": {"url": "https://h.example.com/x", "api_version": "2025-03-31.basil"},
    }
    values.update(fields)
    return live(**values)


def condition_of(patch: steps.Patch, kind: str) -> cond.Condition:
    (found,) = [item for item in patch.conditions if item.type == kind]
    return found


def step_of(patch: steps.Patch) -> str:
    found = condition_of(patch, c.CONDITION_ROTATING)
    return found.reason if found.status == cond.TRUE else rs.IDLE


# --- what starts a rotation ------------------------------------------------------------------


def test_nothing_to_do_when_all_in_line() -> None:
    annotations = {c.ANNOTATION_ROTATE: "r1"}
    assert triggers.choose_trigger(spec(), live(), annotations, NOW) is None


def test_new_annotation_value_requests_rotation_with_its_overlap() -> None:
    annotations = {c.ANNOTATION_ROTATE: "r2", c.ANNOTATION_ROTATE_OVERLAP: "1h"}
    trigger = triggers.choose_trigger(spec(), live(), annotations, NOW)
    assert trigger == triggers.Trigger(triggers.REQUESTED, 3600.0, "r2")


def test_emergency_request_cuts_an_overlap_short_but_normal_one_waits() -> None:
    urgent = {c.ANNOTATION_ROTATE: "r2", c.ANNOTATION_ROTATE_OVERLAP: "0"}
    normal = {c.ANNOTATION_ROTATE: "r2"}
    assert triggers.cuts_overlap_short(spec(), live(), urgent)
    assert not triggers.cuts_overlap_short(spec(), live(), normal)


def test_api_version_and_connect_changes_replace_the_endpoint() -> None:
    changed = triggers.choose_trigger(spec(stripeApiVersion="2025-03-31.basil"), live(), {}, NOW)
    assert changed is not None
    assert changed.reason == triggers.API_VERSION_CHANGED
    connect = triggers.choose_trigger(spec(connect=True), live(), {}, NOW)
    assert connect is not None
    assert connect.reason == triggers.CONNECT_CHANGED


def test_schedule_is_due_after_every() -> None:
    every = spec(rotation={"every": "30m", "overlap": "10m"})
    trigger = triggers.choose_trigger(every, live(), {}, NOW)
    assert trigger == triggers.Trigger(triggers.SCHEDULED, 600.0)
    not_yet = live(last_rotation=NOW - timedelta(minutes=5))
    assert triggers.choose_trigger(every, not_yet, {}, NOW) is None


def test_next_version_is_above_every_version_seen() -> None:
    assert rotation.next_version(2, [1, 5]) == 6
    assert rotation.next_version(0, []) == 1


def test_step_defaults_to_idle() -> None:
    assert rs.read({}, {}).step == rs.IDLE
    assert not rs.read({}, {}).recorded


# --- a new webhook ---------------------------------------------------------------------------


def test_new_webhook_reads_its_secret_and_begins_version_1_without_a_list_call() -> None:
    fresh = State()
    assert rotation.next_step(fresh, seen()) == steps.ReadSecret()
    begin = rotation.next_step(fresh, seen(keys=None))
    assert isinstance(begin, steps.Begin)
    assert (begin.trigger.reason, begin.version, begin.events) == (triggers.CREATED, 1, ())
    fields = begin.patch.status
    assert fields[rs.TARGET_VERSION] == 1
    assert fields[rs.OLD_ENDPOINT] is None
    assert fields[rs.PARAMS] == manifests.create_params(spec(), "cl", 1)
    assert step_of(begin.patch) == rs.CREATING
    assert condition_of(begin.patch, c.CONDITION_READY).reason == cond.CREATING
    assert condition_of(begin.patch, c.CONDITION_SYNCED).status == cond.FALSE


def test_an_annotation_present_at_creation_is_handled_not_a_rotation() -> None:
    begin = rotation.next_step(State(), seen(keys=None, annotations={c.ANNOTATION_ROTATE: "x"}))
    assert isinstance(begin, steps.Begin)
    assert begin.patch.status[rs.REQUEST] == "x"


def test_traces_of_an_earlier_create_list_the_accounts_endpoints_first() -> None:
    crashed = State(pending_create=True)
    assert rotation.next_step(crashed, seen(keys=None)) == steps.ListOwnEndpoints()
    begin = rotation.next_step(crashed, seen(keys=None, own=()))
    assert isinstance(begin, steps.Begin)
    assert begin.trigger.reason == triggers.CREATED


def test_endpoint_whose_secret_the_secret_holds_is_adopted() -> None:
    found = seen(keys=keys("we_7"), own=(endpoint("we_6", version=1), endpoint("we_7", version=3)))
    assert rotation.next_step(State(), seen(keys=keys("we_7"))) == steps.ListOwnEndpoints()
    adopt = rotation.next_step(State(), found)
    assert isinstance(adopt, steps.Adopt)
    assert adopt.endpoint_id == "we_7"
    fields = adopt.patch.status
    assert (fields["endpointId"], fields["secretVersion"]) == ("we_7", 3)
    assert (fields[rs.API_VERSION], fields[rs.CONNECT]) == (API_VERSION, False)
    assert all(fields[name] is None for name in rs.IN_FLIGHT)
    assert step_of(adopt.patch) == rs.IDLE


def test_endpoints_of_ours_whose_secret_is_lost_are_replaced_above_their_versions() -> None:
    lost = seen(keys=None, own=(endpoint("we_6", version=4),))
    begin = rotation.next_step(State(recorded=True), lost)
    assert isinstance(begin, steps.Begin)
    assert begin.trigger.reason == triggers.SECRET_LOST
    assert begin.version == 5
    assert begin.patch.status[rs.OLD_ENDPOINT] == "we_6"


# --- Creating --------------------------------------------------------------------------------


def test_creating_reads_the_secret_before_stripe_is_asked() -> None:
    assert rotation.next_step(rotating(rs.CREATING), seen()) == steps.ReadSecret()


def test_creating_creates_with_the_versions_key_and_the_recorded_parameters() -> None:
    state = rotating(rs.CREATING)
    create = rotation.next_step(state, seen(keys=keys("we_1")))
    assert create == steps.CreateEndpoint(2, manifests.idempotency_key("u", 2), state.params or {})


def test_crash_after_the_create_replays_the_very_same_request() -> None:
    # Stripe created the endpoint, the operator died before it heard: nothing was written, so
    # the next pass sends the same key and parameters and Stripe answers with the same one.
    state = rotating(rs.CREATING)
    first = rotation.next_step(state, seen(keys=keys("we_1")))
    again = rotation.next_step(state, seen(keys=keys("we_1"), now=NOW + timedelta(minutes=3)))
    assert again == first


def test_parameters_lost_with_status_are_built_again_for_the_same_version() -> None:
    create = rotation.next_step(rotating(rs.CREATING, params=None), seen(keys=keys("we_1")))
    assert isinstance(create, steps.CreateEndpoint)
    assert create.params == manifests.create_params(spec(), "cl", 2)


def test_the_created_endpoint_is_disabled_at_once() -> None:
    created = steps.Created(endpoint("we_2"), SecretValue("whsec_new"))
    step = rotation.next_step(rotating(rs.CREATING), seen(keys=keys("we_1"), created=created))
    assert step == steps.DisableEndpoint("we_2")


def created_disabled(**fields: Any) -> steps.Observed:
    created = steps.Created(endpoint("we_2", status="disabled"), SecretValue("whsec_new"))
    return seen(created=created, **fields)


def test_secrets_are_written_keeping_the_old_one_then_the_receiver_is_waited_for() -> None:
    step = rotation.next_step(rotating(rs.CREATING), created_disabled(keys=keys("we_1")))
    assert isinstance(step, steps.WriteSecrets)
    assert (step.endpoint_id, step.keep) == ("we_2", rotation.KEEP_CURRENT)
    assert step.then.durable
    assert step_of(step.then.patch) == rs.PROPAGATING
    assert step.then.patch.status[rs.NEW_ENDPOINT] == "we_2"
    assert step.then.patch.status[rs.PREVIOUS_KEPT] is True
    assert [event.reason for event in step.then.events] == ["NewEndpointCreated"]


def test_crash_after_the_secret_write_keeps_the_previous_secret_it_wrote() -> None:
    # The Secret already names the new endpoint: its previous secret is the old endpoint's.
    step = rotation.next_step(
        rotating(rs.CREATING), created_disabled(keys=keys("we_2", previous=True))
    )
    assert isinstance(step, steps.WriteSecrets)
    assert step.keep == rotation.KEEP_PREVIOUS


def test_an_emergency_rotation_keeps_no_old_secret() -> None:
    emergency = rotating(rs.CREATING, overlap=0.0)
    step = rotation.next_step(emergency, created_disabled(keys=keys("we_1")))
    assert isinstance(step, steps.WriteSecrets)
    assert step.keep is None
    assert step.then.patch.status[rs.PREVIOUS_KEPT] is False


def test_without_a_receiver_to_ask_the_endpoint_is_enabled_next() -> None:
    step = rotation.next_step(
        rotating(rs.CREATING), created_disabled(keys=keys("we_1"), handshake=False)
    )
    assert isinstance(step, steps.WriteSecrets)
    assert step_of(step.then.patch) == rs.ENABLING
    assert condition_of(step.then.patch, c.CONDITION_SECRET_PROPAGATED).status == cond.UNKNOWN
    assert step.then.durable  # the old endpoint still delivers: on record at once
    first = rotation.next_step(
        rotating(rs.CREATING, target_version=1, old_endpoint_id=None),
        created_disabled(keys=None, handshake=False),
    )
    assert isinstance(first, steps.WriteSecrets)
    assert not first.then.durable  # nothing delivers yet: replaying the create is harmless
    assert first.then.events == ()


def test_a_key_used_with_other_parameters_moves_to_a_version_above_all_seen() -> None:
    step = rotation.next_step(rotating(rs.CREATING), seen(keys=None, seen_versions=(2, 3)))
    assert isinstance(step, steps.Record)
    assert step.patch.status == {rs.TARGET_VERSION: 4, rs.PARAMS: None}
    assert step_of(step.patch) == rs.CREATING


def test_a_request_arriving_mid_rotation_waits_for_it() -> None:
    annotations = {c.ANNOTATION_ROTATE: "r3", c.ANNOTATION_ROTATE_OVERLAP: "0"}
    step = rotation.next_step(
        rotating(rs.CREATING), seen(keys=keys("we_1"), annotations=annotations)
    )
    assert isinstance(step, steps.CreateEndpoint)
    assert step.version == 2


# --- Propagating -----------------------------------------------------------------------------


def propagating(**fields: Any) -> State:
    return rotating(rs.PROPAGATING, **{"new_endpoint_id": "we_2", "previous_kept": True, **fields})


def test_propagating_asks_the_receiver() -> None:
    assert rotation.next_step(propagating(), seen()) == steps.ReadSecret()
    assert rotation.next_step(propagating(), seen(keys=keys("we_2", True))) == steps.Probe()


def test_a_receiver_without_the_secret_keeps_the_new_endpoint_disabled() -> None:
    answer = ProbeResult(False, "http://r holds other secrets only")
    step = rotation.next_step(propagating(), seen(keys=keys("we_2", True), probe=answer))
    assert isinstance(step, steps.WaitForReceiver)
    waiting = condition_of(step.patch, c.CONDITION_SECRET_PROPAGATED)
    assert (waiting.status, waiting.reason) == (cond.FALSE, cond.WAITING_FOR_RECEIVER)
    assert "http://r holds other secrets only" in waiting.message


def test_crash_while_waiting_for_the_receiver_asks_it_again() -> None:
    # Nothing but a condition was written while waiting: the next pass probes again.
    assert rotation.next_step(propagating(), seen(keys=keys("we_2", True))) == steps.Probe()


def test_the_receivers_confirmation_moves_on_to_the_enable() -> None:
    answer = ProbeResult(True, "2 replica(s) confirmed")
    step = rotation.next_step(propagating(), seen(keys=keys("we_2", True), probe=answer))
    assert isinstance(step, steps.Record)
    assert step_of(step.patch) == rs.ENABLING
    confirmed = condition_of(step.patch, c.CONDITION_SECRET_PROPAGATED)
    assert (confirmed.status, confirmed.reason) == (cond.TRUE, cond.CONFIRMED)
    assert [event.reason for event in step.events] == ["SecretPropagated"]


def test_a_secret_lost_mid_rotation_replays_the_create() -> None:
    for lost in (None, keys("we_1")):
        step = rotation.next_step(propagating(), seen(keys=lost))
        assert isinstance(step, steps.Record)
        assert step_of(step.patch) == rs.CREATING


def test_an_operator_restarted_without_a_receiver_enables_at_once() -> None:
    step = rotation.next_step(propagating(), seen(keys=keys("we_2", True), handshake=False))
    assert isinstance(step, steps.Record)
    assert step_of(step.patch) == rs.ENABLING
    assert condition_of(step.patch, c.CONDITION_SECRET_PROPAGATED).status == cond.UNKNOWN


# --- Enabling --------------------------------------------------------------------------------


def enabling(**fields: Any) -> State:
    return rotating(rs.ENABLING, **{"new_endpoint_id": "we_2", "previous_kept": True, **fields})


def test_enabling_enables_the_new_endpoint_as_the_spec_asks() -> None:
    assert rotation.next_step(enabling(), seen()) == steps.EnableEndpoint("we_2", False)
    off = seen(spec=spec(disabled=True))
    assert rotation.next_step(enabling(), off) == steps.EnableEndpoint("we_2", True)


def test_crash_after_the_enable_enables_again() -> None:
    # Stripe enabled it and the operator died before recording: enabling twice is harmless.
    later = seen(now=NOW + timedelta(seconds=30))
    assert rotation.next_step(enabling(), later) == steps.EnableEndpoint("we_2", False)


def test_the_enable_starts_the_overlap_and_is_on_record_at_once() -> None:
    step = rotation.next_step(enabling(), seen(enabled=endpoint("we_2")))
    assert isinstance(step, steps.Record)
    assert step.durable
    fields = step.patch.status
    expires = rfc3339(NOW + timedelta(seconds=60))
    assert fields["endpointId"] == "we_2"
    assert fields["secretVersion"] == 2
    assert fields["lastRotationTime"] == rfc3339(NOW)
    assert fields["previousEndpointId"] == "we_1"
    assert fields["previousSecretExpiresAt"] == expires
    assert fields[rs.API_VERSION] == "2025-03-31.basil"
    assert all(fields[name] is None for name in rs.IN_FLIGHT)
    overlap = condition_of(step.patch, c.CONDITION_ROTATING)
    assert (overlap.status, overlap.reason) == (cond.TRUE, rs.OVERLAP)
    assert expires in overlap.message
    assert step.events == ()


def test_an_emergency_enable_ends_the_old_secret_at_once() -> None:
    step = rotation.next_step(enabling(previous_kept=False), seen(enabled=endpoint("we_2")))
    assert isinstance(step, steps.Record)
    assert step.patch.status["previousSecretExpiresAt"] == rfc3339(NOW)


def test_without_an_old_endpoint_the_rotation_is_done_at_the_enable() -> None:
    first = enabling(
        trigger=triggers.CREATED, target_version=1, old_endpoint_id=None, previous_kept=False
    )
    step = rotation.next_step(first, seen(enabled=endpoint("we_2")))
    assert isinstance(step, steps.Record)
    assert not step.durable
    assert step_of(step.patch) == rs.IDLE
    assert step.patch.status["previousSecretExpiresAt"] is None
    assert [event.reason for event in step.events] == ["EndpointEnabled"]
    replaced = replace(first, trigger=triggers.ENDPOINT_DELETED)
    again = rotation.next_step(replaced, seen(enabled=endpoint("we_2")))
    assert isinstance(again, steps.Record)
    assert [event.reason for event in again.events] == ["RotationCompleted"]


# --- Overlap and Idle ------------------------------------------------------------------------


def overlap(expires: datetime, **fields: Any) -> State:
    values: dict[str, Any] = {
        "step": rs.OVERLAP,
        "secret_version": 2,
        "status_endpoint_id": "we_2",
        "previous_endpoint_id": "we_1",
        "previous_expires": expires,
        "overlap": 60.0,
        "request": "r2",
    }
    values.update(fields)
    return live(**values)


def test_a_settled_webhook_looks_up_its_endpoint_and_its_secret() -> None:
    assert rotation.next_step(live(), seen()) == steps.LookUpEndpoint("we_1")
    assert rotation.next_step(live(), seen(endpoint=endpoint("we_1"))) == steps.ReadSecret()


def test_all_in_line_settles_until_the_next_drift_check() -> None:
    step = rotation.next_step(live(), seen(endpoint=endpoint("we_1"), keys=keys("we_1")))
    assert step == steps.Settle(endpoint("we_1"), False, None, None)


def test_during_the_overlap_it_settles_until_the_old_endpoint_is_due() -> None:
    expires = NOW + timedelta(seconds=30)
    state = overlap(expires)
    step = rotation.next_step(state, seen(endpoint=endpoint("we_2"), keys=keys("we_2", True)))
    # The old endpoint goes a quarter of the overlap (at most 5 s) before its secret expires.
    assert step == steps.Settle(endpoint("we_2"), True, expires, expires - timedelta(seconds=5))
    assert rotation.seconds_until(expires - timedelta(seconds=5), NOW) == pytest.approx(25.1)
    short = overlap(expires, overlap=8.0)
    assert rotation.old_endpoint_deadline(short) == expires - timedelta(seconds=2)


def test_at_its_deadline_the_old_endpoint_and_secret_go() -> None:
    state = overlap(NOW + timedelta(seconds=4))
    step = rotation.next_step(state, seen(endpoint=endpoint("we_2"), keys=keys("we_2", True)))
    assert isinstance(step, steps.FinishOverlap)
    assert (step.delete, step.drop_previous) == ("we_1", True)
    fields = step.then.patch.status
    assert fields == {"previousEndpointId": None, "previousSecretExpiresAt": None}
    assert step_of(step.then.patch) == rs.IDLE
    assert [event.reason for event in step.then.events] == ["RotationCompleted"]


def test_crash_after_the_old_endpoint_was_deleted_deletes_it_again() -> None:
    # Stripe deleted it and the operator died before recording: the next pass, past the
    # deadline, finishes the same way (a 404 on delete counts as done).
    state = overlap(NOW - timedelta(seconds=1))
    step = rotation.next_step(state, seen(endpoint=endpoint("we_2"), keys=keys("we_2")))
    assert isinstance(step, steps.FinishOverlap)
    assert (step.delete, step.drop_previous) == ("we_1", False)


def test_an_emergency_request_cuts_the_overlap_short_and_a_normal_one_waits() -> None:
    state = overlap(NOW + timedelta(hours=1))
    view = {"endpoint": endpoint("we_2"), "keys": keys("we_2", True)}
    urgent = {c.ANNOTATION_ROTATE: "r3", c.ANNOTATION_ROTATE_OVERLAP: "0"}
    assert isinstance(
        rotation.next_step(state, seen(annotations=urgent, **view)), steps.FinishOverlap
    )
    normal = {c.ANNOTATION_ROTATE: "r3"}
    assert isinstance(rotation.next_step(state, seen(annotations=normal, **view)), steps.Settle)


def test_a_due_request_begins_a_rotation_of_the_live_endpoint() -> None:
    annotations = {c.ANNOTATION_ROTATE: "r2", c.ANNOTATION_ROTATE_OVERLAP: "1h"}
    view = seen(endpoint=endpoint("we_1"), keys=keys("we_1"), annotations=annotations)
    begin = rotation.next_step(live(), view)
    assert isinstance(begin, steps.Begin)
    assert (begin.trigger.reason, begin.version) == (triggers.REQUESTED, 2)
    fields = begin.patch.status
    assert (fields[rs.REQUEST], fields[rs.OLD_ENDPOINT], fields[rs.OVERLAP_SECONDS]) == (
        "r2",
        "we_1",
        3600.0,
    )
    assert [event.reason for event in begin.events] == ["RotationStarted"]
    assert step_of(begin.patch) == rs.CREATING


def test_a_scheduled_rotation_keeps_the_request_last_handled() -> None:
    view = seen(spec=spec(rotation={"every": "30m"}), endpoint=endpoint("we_1"), keys=keys("we_1"))
    begin = rotation.next_step(live(), view)
    assert isinstance(begin, steps.Begin)
    assert begin.trigger.reason == triggers.SCHEDULED
    assert begin.patch.status[rs.REQUEST] == "r1"


def test_an_endpoint_deleted_in_the_dashboard_is_forgotten_and_replaced() -> None:
    begin = rotation.next_step(live(), seen(endpoint=None))
    assert isinstance(begin, steps.Begin)
    assert begin.trigger.reason == triggers.ENDPOINT_DELETED
    assert begin.patch.status[rs.OLD_ENDPOINT] is None
    assert begin.forget is not None
    assert begin.forget.patch.status == {
        "endpointId": None,
        "stripeStatus": None,
        "previousEndpointId": None,
    }
    (event,) = begin.forget.events
    assert (event.reason, event.warning) == (cond.ENDPOINT_DELETED, True)


def test_a_lost_secret_replaces_the_endpoint() -> None:
    for lost in (None, keys("we_9")):
        begin = rotation.next_step(live(), seen(endpoint=endpoint("we_1"), keys=lost))
        assert isinstance(begin, steps.Begin)
        assert begin.trigger.reason == triggers.SECRET_LOST
        assert begin.patch.status[rs.OLD_ENDPOINT] == "we_1"


# --- status: the new shape and the 0.1 one ---------------------------------------------------


def test_the_step_is_the_rotating_conditions_reason() -> None:
    running = rs.rotating(rs.PROPAGATING, 2)
    status = {"conditions": [{"type": running.type, "status": running.status,
                              "reason": running.reason}]}  # fmt: skip
    assert rs.read(status, {}).step == rs.PROPAGATING
    done = rs.rotating(rs.IDLE, 2)
    assert (done.status, done.reason) == (cond.FALSE, rs.IDLE)
    status = {"conditions": [{"type": done.type, "status": done.status, "reason": done.reason}]}
    assert rs.read(status, {}).step == rs.IDLE
    assert rs.read(status, {}).recorded


def test_fields_of_a_rotation_count_only_before_its_enable() -> None:
    status = {
        rs.NEW_ENDPOINT: "we_2",
        rs.OLD_ENDPOINT: "we_1",
        "conditions": [{"type": c.CONDITION_ROTATING, "status": "False", "reason": rs.IDLE}],
    }
    idle = rs.read(status, {})
    assert (idle.new_endpoint_id, idle.old_endpoint_id) == (None, None)
    status["conditions"] = [
        {"type": c.CONDITION_ROTATING, "status": "True", "reason": rs.PROPAGATING}
    ]
    running = rs.read(status, {c.ANNOTATION_ENDPOINT_ID: "we_1"})
    assert running.known_endpoint_ids() == {"we_1", "we_2"}


LEGACY_PROPAGATING = {
    "endpointId": "we_1",
    "secretVersion": 1,
    "rotation": {
        "phase": "Propagating",
        "trigger": "Requested",
        "targetVersion": 2,
        "overlapSeconds": 60.0,
        "oldEndpointId": "we_1",
        "newEndpointId": "we_2",
        "request": "r2",
        "previousKept": True,
        "params": {"url": "https://h.example.com/x"},
        "applied": {"apiVersion": API_VERSION, "connect": False},
    },
}


def test_status_written_by_the_previous_version_is_read_as_it_stands() -> None:
    state = rs.read(LEGACY_PROPAGATING, {})
    assert state == rotating(
        rs.PROPAGATING,
        last_rotation=None,
        new_endpoint_id="we_2",
        previous_kept=True,
        params={"url": "https://h.example.com/x"},
    )


def test_status_written_by_the_previous_version_is_rewritten_into_the_new_shape() -> None:
    migration = rs.migration(LEGACY_PROPAGATING)
    assert migration is not None
    patch, conditions = migration
    assert patch == {
        "rotation": None,
        rs.TRIGGER: "Requested",
        rs.REQUEST: "r2",
        rs.OVERLAP_SECONDS: 60.0,
        rs.TARGET_VERSION: 2,
        rs.NEW_ENDPOINT: "we_2",
        rs.OLD_ENDPOINT: "we_1",
        rs.PREVIOUS_KEPT: True,
        rs.PARAMS: {"url": "https://h.example.com/x"},
        rs.API_VERSION: API_VERSION,
        rs.CONNECT: False,
    }
    assert conditions == [rs.rotating(rs.PROPAGATING, 2)]
    # Read back after the rewrite, the state is the same as before it.
    rewritten = {k: v for k, v in {**LEGACY_PROPAGATING, **patch}.items() if v is not None}
    rewritten["conditions"] = [
        {"type": item.type, "status": item.status, "reason": item.reason} for item in conditions
    ]
    assert rs.read(rewritten, {}) == rs.read(LEGACY_PROPAGATING, {})
    assert rs.migration(rewritten) is None


def test_a_settled_status_of_the_previous_version_keeps_only_what_still_counts() -> None:
    legacy = {
        "secretVersion": 3,
        "previousSecretExpiresAt": rfc3339(NOW),
        "rotation": {**LEGACY_PROPAGATING["rotation"], "phase": "Overlap"},  # type: ignore[dict-item]
    }
    migration = rs.migration(legacy)
    assert migration is not None
    patch, (condition,) = migration
    assert not set(rs.IN_FLIGHT) & set(patch)
    assert (condition.reason, condition.status) == (rs.OVERLAP, cond.TRUE)
    assert "version 3" in condition.message
    assert rs.read(legacy, {}).step == rs.OVERLAP
