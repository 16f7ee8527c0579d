"""A rotation under steady subscription traffic: every event applied exactly once, no
signature refused once the new endpoint is enabled, the old endpoint and secret gone after
the overlap, and the secret version one higher."""

from __future__ import annotations

import pytest

from devstack.processes import poll
from devstack.project.receiver_process import FedReceiver
from devstack.project.rotation.run import finish, prepare, request_rotation, wait_rotated
from devstack.project.scene import Scene
from stripe_webhook_operator import constants as c
from tests.rotation.probes import fingerprint, loaded_fingerprints, post_signed, probe_event

pytestmark = pytest.mark.integration


def test_rotation_under_traffic_applies_every_event_once(
    scene: Scene, receiver: FedReceiver
) -> None:
    run = prepare(scene, receiver, "shop")
    old_endpoint = run.before["endpointId"]
    request_rotation(run, "8s")
    status = wait_rotated(run)
    run.traffic.wait_for(8)  # traffic goes on through the new endpoint alone
    tally = finish(run, status["endpointId"])

    assert status["secretVersion"] == run.before["secretVersion"] + 1
    assert status["endpointId"] != old_endpoint
    assert tally.events_sent >= run.traffic.sent > 40
    assert tally.problems() == {}
    # Both endpoints were live during the overlap, and the receiver dropped the copies.
    assert tally.duplicates_delivered > 0

    assert [e.id for e in scene.endpoints()] == [status["endpointId"]]
    new_secret = scene.secret(run.secret_name)[c.SECRET_KEY_SIGNING]
    poll(
        "the receiver to drop the old secret",
        lambda: loaded_fingerprints(run) == [fingerprint(new_secret)],
    )
    body = probe_event(run)
    refused = post_signed(run, body, run.old_secret)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "no_matching_signature"
    accepted = post_signed(run, body, new_secret)
    assert accepted.status_code == 200
