"""The receiver's database restored from an older copy: every change since the copy is gone
from the subscribers' state, and nothing Stripe does brings it back. `kubectl stripe recover
--since` (the real console script, against the test's kubeconfig) does, and survives an
operator SIGKILLed half-way through a recovery of over a thousand events: afterwards every
event is applied once, counted from the emulator's own log against the receiver's tables."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devstack.processes import VENV_BIN, poll
from devstack.project.recovery.stage import RecoveryStage

pytestmark = pytest.mark.integration

PLUGIN = VENV_BIN / "kubectl-stripe"
CHANGES = 40
MANY = 1200


def kubectl_stripe(
    kubeconfig: Path, *argv: str, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """Run `kubectl-stripe ARGV` as an admin would, against `kubeconfig`."""
    return subprocess.run(
        [str(PLUGIN), *argv],
        env={**os.environ, "KUBECONFIG": str(kubeconfig)},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def recover(
    stage: RecoveryStage, kubeconfig: Path, *options: str
) -> subprocess.CompletedProcess[str]:
    """`kubectl stripe recover NAME -n NAMESPACE OPTIONS` for the stage's webhook."""
    return kubectl_stripe(kubeconfig, "recover", stage.name, "-n", stage.scene.namespace, *options)


def restore_older_copy(stage: RecoveryStage, backup: Path, changes: int) -> None:
    """Copy the receiver's database, make `changes` changes it applies, then put the copy
    back: the receiver has forgotten every one of them."""
    # The copy is of a database that has everything sent so far: a change still on its way
    # when the receiver stops would be applied after the copy and forgotten with the others.
    stage.settle(timeout=120)
    poll("the receiver applying every change before the copy", lambda: not stage.books().lost)
    stage.receiver.stop_server()
    stage.backup(backup)
    stage.receiver.start()
    before = stage.applied_count()
    stage.change(changes)
    stage.settle(timeout=120)
    poll("the receiver applying the changes", lambda: stage.applied_count() >= before + changes)
    assert stage.books().problems() == {}
    stage.receiver.stop_server()
    stage.restore(backup)
    stage.receiver.start()
    assert stage.applied_count() == before
    assert len(stage.books().lost) == changes


def test_restored_database_then_recover_since_applies_every_change_once(
    stage: RecoveryStage, kube_cluster: Any, tmp_path: Path
) -> None:
    stage.start_operator()
    stage.create()
    stage.subscribe(3)
    stage.change(10)
    restore_older_copy(stage, tmp_path / "backup.db", CHANGES)

    done = recover(stage, kube_cluster.kubeconfig, "--since", "15m", "--timeout", "3m")
    assert done.returncode == 0, done.stderr
    assert f"Requested recovery of StripeWebhook '{stage.webhook}'" in done.stdout
    assert "done: no gap open" in done.stdout

    books = stage.books()
    print(f"{stage.webhook}: {books.summary()}")
    assert len(books.emitted) == CHANGES + 10
    assert books.problems() == {}
    recovery = stage.recovery()
    assert recovery["request"] in done.stdout
    assert not recovery.get("gaps")

    status = kubectl_stripe(kube_cluster.kubeconfig, "status", "-n", stage.scene.namespace)
    assert status.returncode == 0, status.stderr
    header, row = status.stdout.splitlines()[:2]
    assert header.split()[-4:] == ["ROTATING", "RECOVERED", "OPEN", "GAPS"]
    assert row.split()[-2:] == ["True", "<none>"]


def test_operator_sigkilled_in_the_middle_of_a_recovery_loses_and_doubles_nothing(
    stage: RecoveryStage, kube_cluster: Any, tmp_path: Path
) -> None:
    stage.start_operator()
    stage.create()
    stage.subscribe(5)
    restore_older_copy(stage, tmp_path / "backup.db", MANY)

    asked = recover(stage, kube_cluster.kubeconfig, "--since", "15m", "--no-wait")
    assert asked.returncode == 0, asked.stderr
    poll("the recovery under way", lambda: stage.applied_count() >= MANY // 5, timeout=120)
    stage.operators[-1].kill()
    at_kill = stage.applied_count()
    print(f"{stage.webhook}: operator killed with {at_kill} of {MANY} events applied")
    assert at_kill < MANY, "the recovery finished before the kill: nothing was interrupted"
    assert stage.recovery().get("gaps"), "the gap was closed before the kill"

    stage.start_operator()
    books = stage.wait_balanced(timeout=180)
    stage.wait_closed()
    books = stage.books()
    print(f"{stage.webhook}: {books.summary()}")
    assert len(books.emitted) == MANY
    assert books.problems() == {}
