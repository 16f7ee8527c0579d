"""Fixtures of the recovery scenarios: an emulator of their own whose retry schedule ends
within a second (so an outage outlasts Stripe's retries quickly), the operator tests' scene,
the real receiver, and the stage that joins them (devstack.project.recovery.stage)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.project.receiver_process import FedReceiver
from devstack.project.recovery.stage import RecoveryStage
from devstack.project.scene import Scene
from devstack.stripe_emulator.fixtures import StripeTarget, own_emulator
from tests.operator.conftest import receiver, scene, stripewebhook_crd

__all__ = ["receiver", "scene", "stripewebhook_crd"]

# Two retries within 0.7 s, then the delivery has failed for good, as Stripe's test mode gives
# up after three tries over a few hours.
RETRY_SCHEDULE = (0.2, 0.5)


@pytest.fixture(scope="package")
def stripe_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeTarget]:
    """An emulator of the recovery scenarios' own, giving up on a delivery within a second."""
    workdir = Path(tmp_path_factory.mktemp("recovery-emulator"))
    with own_emulator(workdir, retry_schedule=RETRY_SCHEDULE) as target:
        yield target


@pytest.fixture
def stage(scene: Scene, receiver: FedReceiver) -> RecoveryStage:
    """A stage for the webhook 'shop' (not created yet), its operator not started yet."""
    return RecoveryStage(scene, receiver, "shop")
