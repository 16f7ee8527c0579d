"""The operator killed (SIGKILL) at each step of a rotation under traffic, then started again:
the rotation completes with exactly one new endpoint, and every event is applied once.

Each step is reached for certain, not by timing luck: Stripe's answer is held back with the
emulator's `answer_latency` fault (the request ran, the operator never hears of it), or the
receiver's Secret projection is paused (the operator waits for the receiver's confirmation).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from devstack.processes import poll
from devstack.project.receiver_process import FedReceiver
from devstack.project.rotation.run import (
    RotationRun,
    finish,
    prepare,
    request_rotation,
    wait_rotated,
)
from devstack.project.scene import Scene

pytestmark = pytest.mark.integration

# The old endpoint goes a quarter of the overlap (at most 5 s) before its secret expires; with
# 6 s that lead was 1.5 s, and on a loaded machine a delivery from the old endpoint, in flight
# as it was deleted, sometimes reached the receiver after the secret expired (1 run in 4).
OVERLAP = "16s"
# Killed at the start of the overlap, the operator must be back before it ends: the receiver
# stops accepting the old secret then, whether or not the old endpoint is deleted yet.
LONG_OVERLAP = "30s"
HELD = 10.0  # seconds Stripe holds back an answer: long enough to kill the operator meanwhile


def endpoint_ids(run: RotationRun) -> list[str]:
    return [e.id for e in run.scene.endpoints()]


def new_endpoint_id(run: RotationRun) -> str:
    return str(run.status()["newEndpointId"])


def hold_answer(run: RotationRun, method: str, path: str) -> None:
    run.scene.stripe.inject_fault(
        run.scene.api_key, method=method, path_prefix=path, answer_latency=HELD
    )


def wait_propagating(run: RotationRun) -> str:
    """Wait until the new endpoint exists and the operator waits for the receiver."""
    poll(
        "step Propagating",
        lambda: run.step() == "Propagating" and run.status().get("newEndpointId"),
    )
    return new_endpoint_id(run)


def kill_after_endpoint_created(run: RotationRun) -> None:
    """Stripe created the new endpoint; the operator dies before it hears so (nothing of
    the new secret written)."""
    hold_answer(run, "POST", "/v1/webhook_endpoints")
    request_rotation(run, OVERLAP)
    poll("the new endpoint in Stripe", lambda: len(endpoint_ids(run)) == 2)
    assert run.step() == "Creating"
    run.operators[-1].kill()


def kill_after_secrets_written(run: RotationRun) -> None:
    """Both secrets written, the receiver has not confirmed the new one yet."""
    run.receiver.hold_back()
    request_rotation(run, OVERLAP)
    wait_propagating(run)
    run.operators[-1].kill()
    run.receiver.release()


def kill_after_endpoint_enabled(run: RotationRun) -> None:
    """Stripe enabled the new endpoint; the operator dies before it hears so."""
    run.receiver.hold_back()
    request_rotation(run, OVERLAP)
    new_id = wait_propagating(run)
    hold_answer(run, "POST", f"/v1/webhook_endpoints/{new_id}")
    run.receiver.release()
    client = run.scene.client()
    poll(
        "the new endpoint enabled",
        lambda: client.v1.webhook_endpoints.retrieve(new_id).status == "enabled",
    )
    assert run.step() == "Enabling"
    run.operators[-1].kill()


def kill_during_overlap(run: RotationRun) -> None:
    """Both endpoints live, both secrets accepted."""
    request_rotation(run, LONG_OVERLAP)
    poll("step Overlap", lambda: run.step() == "Overlap")
    run.operators[-1].kill()


def kill_while_deleting_old_endpoint(run: RotationRun) -> None:
    """Stripe deleted the old endpoint; the operator dies before it hears so."""
    old_id = str(run.before["endpointId"])
    hold_answer(run, "DELETE", f"/v1/webhook_endpoints/{old_id}")
    request_rotation(run, OVERLAP)
    poll("the old endpoint deleted", lambda: old_id not in endpoint_ids(run), timeout=60)
    assert run.step() == "Overlap"
    run.operators[-1].kill()


STEPS: dict[str, Callable[[RotationRun], None]] = {
    "endpoint-created": kill_after_endpoint_created,
    "secrets-written": kill_after_secrets_written,
    "endpoint-enabled": kill_after_endpoint_enabled,
    "overlap": kill_during_overlap,
    "old-endpoint-deleting": kill_while_deleting_old_endpoint,
}


@pytest.mark.parametrize("step", list(STEPS))
def test_operator_killed_mid_rotation_completes_it_once(
    scene: Scene, receiver: FedReceiver, step: str
) -> None:
    run = prepare(scene, receiver, "shop")
    old_id = str(run.before["endpointId"])
    STEPS[step](run)
    run.start_operator()
    status = wait_rotated(run)
    run.traffic.wait_for(4)
    tally = finish(run, status["endpointId"])

    assert status["secretVersion"] == run.before["secretVersion"] + 1
    # Exactly one new endpoint was ever made, and it is the only one left.
    assert set(run.timeline.changes) == {old_id, status["endpointId"]}
    assert endpoint_ids(run) == [status["endpointId"]]
    assert tally.events_sent >= run.traffic.sent > 20
    assert tally.problems() == {}
