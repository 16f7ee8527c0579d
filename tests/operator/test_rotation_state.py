"""The rotation state machine's pure decisions: what starts a rotation, queueing, overlaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from stripe_webhook_operator import constants as c
from stripe_webhook_operator import manifests, rotation

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def spec(**fields: Any) -> manifests.WebhookSpec:
    body = {
        "metadata": {"namespace": "ns", "name": "app", "uid": "u"},
        "spec": {"apiKeySecretRef": {"name": "k", "key": "k"}, **fields},
    }
    return manifests.parse_webhook(body, "https://h.example.com")


def live_status(**fields: Any) -> dict[str, Any]:
    status: dict[str, Any] = {
        "endpointId": "we_1",
        "secretVersion": 1,
        "lastRotationTime": "2026-11-27T11:00:00Z",
        "rotation": {
            "phase": "Idle",
            "request": "r1",
            "applied": {"apiVersion": "2026-10-28.endive", "connect": False},
        },
    }
    status.update(fields)
    return status


def test_nothing_to_do_when_all_in_line() -> None:
    annotations = {c.ANNOTATION_ROTATE: "r1"}
    assert rotation.choose_trigger(spec(), live_status(), annotations, NOW) is None


def test_new_annotation_value_requests_rotation_with_its_overlap() -> None:
    annotations = {c.ANNOTATION_ROTATE: "r2", c.ANNOTATION_ROTATE_OVERLAP: "1h"}
    trigger = rotation.choose_trigger(spec(), live_status(), annotations, NOW)
    assert trigger == rotation.Trigger(rotation.REQUESTED, 3600.0, "r2")


def test_emergency_request_cuts_an_overlap_short_but_normal_one_waits() -> None:
    status = live_status()
    urgent = {c.ANNOTATION_ROTATE: "r2", c.ANNOTATION_ROTATE_OVERLAP: "0"}
    normal = {c.ANNOTATION_ROTATE: "r2"}
    assert rotation.cuts_overlap_short(spec(), status, urgent)
    assert not rotation.cuts_overlap_short(spec(), status, normal)


def test_api_version_and_connect_changes_replace_the_endpoint() -> None:
    changed = rotation.choose_trigger(
        spec(stripeApiVersion="2025-03-31.basil"), live_status(), {}, NOW
    )
    assert changed is not None
    assert changed.reason == rotation.API_VERSION_CHANGED
    connect = rotation.choose_trigger(spec(connect=True), live_status(), {}, NOW)
    assert connect is not None
    assert connect.reason == rotation.CONNECT_CHANGED


def test_schedule_is_due_after_every() -> None:
    every = spec(rotation={"every": "30m", "overlap": "10m"})
    trigger = rotation.choose_trigger(every, live_status(), {}, NOW)
    assert trigger == rotation.Trigger(rotation.SCHEDULED, 600.0)
    not_yet = live_status(lastRotationTime=manifests.rfc3339(NOW - timedelta(minutes=5)))
    assert rotation.choose_trigger(every, not_yet, {}, NOW) is None


def test_start_keeps_the_handled_request_and_next_version_is_above_all_seen() -> None:
    state = rotation.start(live_status(), rotation.Trigger(rotation.SCHEDULED, 5.0), "we_1", 2)
    assert state["phase"] == rotation.CREATING
    assert state["request"] == "r1"
    assert state["oldEndpointId"] == "we_1"
    assert rotation.next_version({"secretVersion": 2}, [1, 5]) == 6
    assert rotation.next_version({}, []) == 1


def test_phase_defaults_to_idle() -> None:
    assert rotation.phase_of({}) == rotation.IDLE
