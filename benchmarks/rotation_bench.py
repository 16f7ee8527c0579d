"""Rotation benchmark: secret rotations under steady subscription traffic, counted.

On the local stack (kube-apiserver + etcd + controller manager, the Stripe emulator, the real
receiver fed by the Secret projector, the real operator doing the readiness handshake), each
run creates a StripeWebhook in a fresh namespace and Stripe account, streams subscription
updates through Stripe at a steady rate, asks for a rotation with `kubectl stripe rotate
--overlap`, and counts once Stripe's deliveries settle: events sent, failed delivery attempts
by status code, signatures refused (before the new endpoint's enable: Stripe creates endpoints
enabled and the operator disables it at once; after it: a defect), duplicate deliveries the
receiver dropped against events applied twice, and the time until the rotation completed.
Prints the table and writes it into docs/benchmarks.md (section `rotation`).

    make bench-rotation      (or: PYTHONPATH=stack .venv/bin/python -m benchmarks.rotation_bench
                              [--rotations 3] [--overlap 8s] [--rate 8])
"""

from __future__ import annotations

import argparse
import os
import secrets
import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks import report
from devstack.cluster.control_plane import ControlPlane
from devstack.cluster.kubectl import Kubectl
from devstack.processes import REPO_ROOT
from devstack.project.objects import apply_crd
from devstack.project.receiver_process import FedReceiver
from devstack.project.rotation.run import RATE, finish, prepare, request_rotation, wait_rotated
from devstack.project.rotation.tally import Tally
from devstack.project.scene import RECEIVER_SECRET, open_scene
from devstack.stripe_emulator.fixtures import StripeTarget
from devstack.stripe_emulator.launcher import EmulatorProcess

SECTION = "rotation"


@dataclass
class Outcome:
    """One rotation's counts."""

    tally: Tally
    refused_before_enable: int
    seconds: float
    overlap: str
    rate: float


def rotate_once(
    kubectl: Kubectl,
    kubeconfig: Path,
    stripe: StripeTarget,
    workdir: Path,
    overlap: str,
    rate: float,
) -> Outcome:
    """Rotate one webhook under traffic in a fresh namespace and account; return its counts."""
    namespace = f"bench-rotation-{secrets.token_hex(3)}"
    with (
        kubectl.temporary_namespace(namespace),
        open_scene(kubectl, kubeconfig, stripe, namespace, workdir) as scene,
    ):
        receiver = FedReceiver(kubeconfig, namespace, RECEIVER_SECRET, workdir / "receiver")
        try:
            run = prepare(scene, receiver.start(), "shop", rate=rate)
            request_rotation(run, overlap)
            status = wait_rotated(run, timeout=120)
            run.traffic.wait_for(int(rate * 2))
            tally = finish(run, str(status["endpointId"]))
            refused = sum(1 for a in stripe.deliveries(scene.api_key) if a["status"] == 400)
            return Outcome(
                tally,
                refused - len(tally.refusals_after_enable),
                run.finished_at - run.started_at,
                overlap,
                rate,
            )
        finally:
            receiver.stop()


def failures_text(failed: Counter[str]) -> str:
    if not failed:
        return "0"
    return ", ".join(f"{count} answered {status}" for status, count in sorted(failed.items()))


def table(outcomes: Sequence[Outcome]) -> str:
    headers = [
        "Run",
        "Events sent",
        "Failed attempts (by status)",
        "Refused before enable",
        "Refused after enable",
        "Duplicates delivered",
        "Applied twice",
        "Not applied",
        "Rotation took (s)",
    ]
    rows = [
        [
            str(index),
            str(o.tally.events_sent),
            failures_text(o.tally.failed_attempts),
            str(o.refused_before_enable),
            str(len(o.tally.refusals_after_enable)),
            str(o.tally.duplicates_delivered),
            str(len(o.tally.applied_twice)),
            str(len(o.tally.unapplied)),
            f"{o.seconds:.1f}",
        ]
        for index, o in enumerate(outcomes, start=1)
    ]
    return report.markdown_table(headers, rows)


def render(outcomes: Sequence[Outcome], load_at_start: str) -> str:
    first = outcomes[0]
    lines = [
        "## Rotation under traffic",
        "",
        f"`make bench-rotation`: {len(outcomes)} rotation(s), each of a "
        f"fresh StripeWebhook with `kubectl stripe rotate --overlap {first.overlap}` while "
        f"{first.rate:g} subscription updates per second flow through the Stripe emulator to "
        "the real receiver. Counts once Stripe's deliveries settled; the time runs from the "
        "request to the rotation's completion (old endpoint deleted), overlap included.",
        "",
        table(outcomes),
        "",
        *report.closing_sections(
            report.machine_facts(load_at_start)
            + report.package_versions(["kopf", "stripe", "starlette", "uvicorn", "httpx"]),
            [
                "Failed attempts are Stripe's delivery attempts without a 2xx answer; Stripe "
                "retries them. A refusal before the enable comes from the new endpoint in the "
                "moment between Stripe creating it (enabled, as Stripe's API creates every "
                "endpoint) and the operator disabling it; each such event also reaches the "
                "old endpoint and is applied from there.",
                "Duplicates delivered: an event sent by both endpoints during the overlap (or "
                "retried) and answered 200 without being applied again.",
            ],
        ),
    ]
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rotations", type=int, default=3, help="rotations to run (default 3)")
    parser.add_argument("--overlap", default="8s", help="overlap of each rotation (default 8s)")
    parser.add_argument("--rate", type=float, default=RATE, help="updates per second")
    report.add_output_option(parser)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[Outcome]:
    """Run the rotations, print the table and write it into docs/benchmarks.md."""
    options = parse_args(argv)
    load_at_start = report.load_text()
    # kubectl finds the `kubectl-stripe` plugin on PATH.
    os.environ["PATH"] = f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="bench-rotation-") as tmp:
        workdir = Path(tmp)
        plane = ControlPlane(workdir / "kube").start()
        emulator = EmulatorProcess(workdir / "stripe").start()
        try:
            kubectl = Kubectl(plane.kubeconfig, workdir / "kubectl-cache")
            apply_crd(kubectl)
            stripe = StripeTarget(emulator.base_url)
            for index in range(options.rotations):
                outcome = rotate_once(
                    kubectl,
                    plane.kubeconfig,
                    stripe,
                    workdir / f"run-{index}",
                    options.overlap,
                    options.rate,
                )
                outcomes.append(outcome)
                print(table(outcomes).splitlines()[-1], flush=True)
        finally:
            emulator.stop()
            plane.stop()
    report.publish(SECTION, render(outcomes, load_at_start), report.output_path(options.output))
    return outcomes


if __name__ == "__main__":
    main()
