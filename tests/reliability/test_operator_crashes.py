"""The operator SIGKILLed at random moments while it creates, updates and deletes
StripeWebhooks, then restarted: the account ends with exactly the endpoints the specs ask for,
each Secret verifies a real delivery, and nothing is orphaned or doubled."""

from __future__ import annotations

import json
import random
import time

import pytest

from devstack.project.objects import webhook_manifest
from devstack.project.operator_process import OperatorProcess
from devstack.project.scene import Scene
from tests.reliability.convergence import check_deliveries, settle
from tests.reliability.ledger import TIMEOUT, Ledger, Row, trials
from tests.reliability.sink import Sink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT)]

SCENARIO = "Operator SIGKILL at random points of create, update, delete"
WEBHOOKS_PER_TRIAL = 3
# Kill moments: the whole create of one webhook takes about a second on the local stack.
KILL_WINDOW = 2.5


def kill_and_restart(
    scene: Scene, operator: OperatorProcess, rng: random.Random, row: Row
) -> OperatorProcess:
    """Let the operator work for a random moment, SIGKILL it, start a fresh one."""
    time.sleep(rng.uniform(0.0, KILL_WINDOW))
    operator.kill()
    row.add(crashes=1)
    return scene.start_operator()


def test_operator_killed_during_create_update_delete_converges(
    scene: Scene, sink: Sink, ledger: Ledger
) -> None:
    row = ledger.row(SCENARIO)
    rng = random.Random()
    subscription = scene.stripe.create_subscription(scene.api_key)
    operator = scene.start_operator()
    problems: list[str] = []
    count = trials(1, 6)
    for trial in range(count):
        names = [f"t{trial}-w{i}" for i in range(WEBHOOKS_PER_TRIAL)]
        wanted = {name: f"{sink.url}/{scene.namespace}/{name}/v1" for name in names}
        for name, url in wanted.items():
            scene.apply(webhook_manifest(scene.namespace, name, url=url, description="v1"))
        operator = kill_and_restart(scene, operator, rng, row)

        # Update in place: new URL, description and metadata for every webhook at once.
        for name in names:
            wanted[name] = f"{sink.url}/{scene.namespace}/{name}/v2"
            scene.apply(
                webhook_manifest(
                    scene.namespace,
                    name,
                    url=wanted[name],
                    description="v2",
                    metadata={"trial": str(trial)},
                )
            )
        operator = kill_and_restart(scene, operator, rng, row)

        doomed = names[0]
        scene.kubectl("delete", "stripewebhook", doomed, "-n", scene.namespace, "--wait=false")
        del wanted[doomed]
        operator = kill_and_restart(scene, operator, rng, row)

        outcome = settle(scene, wanted, {doomed})
        lost = (
            outcome.lost if outcome.lost else check_deliveries(scene, sink, wanted, subscription.id)
        )
        row.add(
            trials=1,
            events_sent=len(wanted) + 1,
            lost=len(lost),
            applied_twice=len(outcome.extra),
        )
        problems += [f"trial {trial}: {p}" for p in lost + outcome.extra]
        if trial + 1 < count:  # a clean account for the next trial
            for name in wanted:
                scene.kubectl("delete", "swh", name, "-n", scene.namespace, "--wait=false")
            settle(scene, {}, set(wanted), timeout=30)
    assert not problems, json.dumps(problems, indent=1)
