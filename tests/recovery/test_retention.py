"""A gap older than Stripe's 30-day retention is reported, never hidden: changes made while
the emulator's clock stood 31 days back (their deliveries failed, Stripe gave up) are out of
the Events API once the clock runs again; a recover request reaching that far answers with
`Recovered=False BeyondRetention`, a Warning Event and the lost interval in status, and
recovers everything still retained."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from devstack.processes import poll
from devstack.project.recovery.stage import RecoveryStage
from stripe_webhook_operator import constants as c
from stripe_webhook_operator.gaps import BEYOND_RETENTION
from stripe_webhook_operator.times import parse_timestamp, rfc3339
from tests.recovery.test_restore import kubectl_stripe, recover

pytestmark = pytest.mark.integration

DAY = 86400
OLD_CHANGES = 10
RECENT_CHANGES = 5


def test_gap_beyond_retention_is_reported_with_its_interval(
    stage: RecoveryStage, kube_cluster: Any
) -> None:
    stage.start_operator()
    stage.create()
    stage.subscribe(3)
    stripe, api_key = stage.scene.stripe, stage.scene.api_key
    now = int(time.time())

    stage.receiver.stop_server()
    stripe.set_clock(api_key, now - 31 * DAY)
    stage.change(OLD_CHANGES)
    stage.settle()
    stripe.resume_clock(api_key)
    stage.receiver.start()
    stage.change(RECENT_CHANGES)

    # The plugin refuses an interval it knows is beyond retention, saying what to write...
    refused = recover(stage, kube_cluster.kubeconfig, "--since", "768h")
    assert refused.returncode == 2
    assert (
        "Stripe keeps events for 30 days only (older ones cannot be recovered); write at most"
        in refused.stderr
    )
    # ...so the request reaching 32 days back is written as the annotations themselves.
    since = datetime.fromtimestamp(now - 32 * DAY, UTC)
    stage.scene.kubectl(
        "annotate",
        "--overwrite",
        "swh",
        stage.name,
        "-n",
        stage.scene.namespace,
        f"{c.ANNOTATION_RECOVER}=beyond-{now}",
        f"{c.ANNOTATION_RECOVER_SINCE}={rfc3339(since)}",
    )

    poll(
        "Recovered=False BeyondRetention",
        lambda: stage.recovered().get("reason") == BEYOND_RETENTION,
        timeout=60,
    )
    poll("the retained part recovered", lambda: not stage.recovery().get("gaps"), timeout=120)
    recovery = stage.recovery()
    assert recovery["request"] == f"beyond-{now}"
    (lost,) = recovery["lost"]
    lost_from, lost_to = parse_timestamp(lost["from"]), parse_timestamp(lost["to"])
    assert lost_from is not None
    assert lost_to is not None
    assert abs(lost_from - since) <= timedelta(seconds=1)
    # It ends where Stripe's retention begins: nothing it holds is still listed.
    assert lost_to <= datetime.now(UTC) - timedelta(days=30)
    message = stage.recovered()["message"]
    assert lost["from"] in message
    assert lost["to"] in message

    warnings = [e for e in stage.scene.events(stage.name) if e["reason"] == BEYOND_RETENTION]
    assert warnings
    assert warnings[-1]["type"] == "Warning"
    assert lost["from"] in warnings[-1]["message"]

    books = stage.wait_balanced()
    print(f"{stage.webhook}: {books.summary()}")
    # Each change made 31 days back is beyond retention, inside the interval reported lost.
    assert len(books.beyond_retention) == OLD_CHANGES
    for event in books.beyond_retention:
        assert lost_from.timestamp() <= event["created"] <= lost_to.timestamp()
    assert len(books.emitted) == OLD_CHANGES + RECENT_CHANGES
    assert books.problems() == {}

    shown = kubectl_stripe(
        kube_cluster.kubeconfig, "status", stage.name, "-n", stage.scene.namespace
    )
    assert shown.returncode == 0, shown.stderr
    assert "False (BeyondRetention)" in shown.stdout
    assert f"Recovery gaps of {stage.webhook}:" in shown.stdout
    assert f"{lost['from']}   {lost['to']}   Lost (beyond retention)" in shown.stdout

    # A new request acknowledges the loss: the lost intervals are emptied, Recovered is True.
    acknowledged = recover(stage, kube_cluster.kubeconfig, "--since", "1h", "--timeout", "2m")
    assert acknowledged.returncode == 0, acknowledged.stderr
    assert stage.recovery()["lost"] == []
    poll("Recovered=True", lambda: stage.recovered().get("status") == "True", timeout=60)
