"""The receiver's aggregated Secret deleted by hand is written back by the operator at once,
with every webhook's entry, not at its next periodic pass."""

from __future__ import annotations

import pytest

from devstack.processes import poll
from devstack.project.objects import webhook_manifest
from devstack.project.scene import RECEIVER_SECRET, Scene, ready_webhook
from tests.operator.conftest import receiver_entry

pytestmark = pytest.mark.integration


def test_aggregated_secret_deleted_by_hand_is_written_back_with_every_entry(
    scene: Scene,
) -> None:
    # An hour between drift passes (and between reads of the Secret): only the deletion
    # itself can bring the Secret back within the wait below.
    scene.start_operator("--drift-interval=1h")
    names = ("shop", "books")
    for name in names:
        scene.apply(webhook_manifest(scene.namespace, name))
    for name in names:
        ready_webhook(scene, name)
    entries = {name: receiver_entry(scene, name) for name in names}
    assert all(entries.values())
    scene.kubectl("delete", "secret", RECEIVER_SECRET, "-n", scene.namespace)
    poll(
        "the receiver's Secret written back with every webhook's entry",
        lambda: all(receiver_entry(scene, name) == entries[name] for name in names),
        timeout=60,
    )
