"""`make demo` walks the whole journey on the local stack and ends with a true summary."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from devstack.processes import REPO_ROOT

pytestmark = pytest.mark.integration

SUMMARY = re.compile(r"^SUMMARY (.*)$", re.MULTILINE)
PAIR = re.compile(r"(\w+)=(\S+)")
SECRET_SHAPES = re.compile(r"whsec_\w+|sk_test_\w{8,}")
DEMO_TIMEOUT = 600


def summary(output: str) -> dict[str, str]:
    """The key=value pairs of every SUMMARY line."""
    return {k: v for line in SUMMARY.findall(output) for k, v in PAIR.findall(line)}


def demo_processes() -> list[int]:
    """PIDs of processes still running with the demo's folder on their command line or in
    their environment (the demo exports it to every child)."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == os.getpid():
            continue
        try:
            seen = (proc / "cmdline").read_bytes() + (proc / "environ").read_bytes()
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if b"stripe-webhook-demo-" in seen and state not in ("Z", "X"):
            found.append(int(proc.name))
    return found


def demo_env() -> dict[str, str]:
    """The demo's environment: the real services only when everything they need is given
    (a cluster, a Stripe test key and a public URL for the receiver), else the local stack."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT / "stack"))
    env.pop("DEMO_KEEP", None)
    if not all(
        env.get(name) for name in ("E2E_KUBECONFIG", "STRIPE_TEST_API_KEY", "DEMO_PUBLIC_URL")
    ):
        env.pop("E2E_KUBECONFIG", None)
        env.pop("STRIPE_TEST_API_KEY", None)
    return env


def outside_make(env: dict[str, str]) -> dict[str, str]:
    """`env` without the flags a parent make passes down: under `make test` they would turn a
    nested make's output into "Entering/Leaving directory" lines."""
    return {k: v for k, v in env.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS")}


def test_make_demo_runs_the_demo_module() -> None:
    plan = subprocess.run(
        ["make", "--no-print-directory", "-n", "demo"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        check=True,
        env=outside_make(dict(os.environ)),
    ).stdout
    assert "-m devstack.demo" in plan.splitlines()[-1]


@pytest.mark.timeout(DEMO_TIMEOUT + 60)
def test_demo_journey_ends_with_a_true_summary() -> None:
    env = demo_env()
    # `make demo` itself: under `make test` its `install` prerequisites are already done.
    result = subprocess.run(
        ["make", "--no-print-directory", "demo"],
        cwd=REPO_ROOT,
        env=outside_make(env),
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    facts = summary(result.stdout)
    assert facts["webhook"].endswith("/my-app")
    assert facts["endpoint"].startswith("we_")
    assert facts["previous_endpoint"].startswith("we_")
    assert facts["endpoint"] != facts["previous_endpoint"]
    assert facts["rotation"] == "v1->v2"
    assert int(facts["events_applied"]) == 2
    # The event after the rotation came from both endpoints of the overlap, each verified.
    assert int(facts["duplicates"]) >= 1
    assert facts["verification_failures"] == "0"
    assert facts["cancel_at_period_end"] == "True->False"
    assert facts["entitlements"] == "premium"
    assert facts["verified_after_rotation"] == "True"
    assert facts["leftover_processes"] == "0"
    for command in (
        "kubectl apply -n billing -f examples/stripewebhook.yaml",
        "kubectl stripe rotate my-app -n billing --wait",
    ):
        assert f"$ {command}" in result.stdout
    assert not SECRET_SHAPES.search(output), "a secret value reached the demo's output"
    assert demo_processes() == []


@pytest.mark.timeout(300)
def test_demo_interrupted_midway_stops_every_process() -> None:
    env = demo_env()
    with subprocess.Popen(
        [sys.executable, "-m", "devstack.demo"],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        assert process.stdout is not None
        seen = []
        for line in process.stdout:
            seen.append(line)
            # By now the control plane, emulator, projector, receiver and operator all run.
            if line.startswith("==> Wait until the StripeWebhook is Ready"):
                process.send_signal(signal.SIGTERM)  # what Ctrl-C does, for a detached run
                break
        rest = process.communicate(timeout=120)[0]
    output = "".join(seen) + rest
    assert process.returncode == 130, output[-4000:]
    assert "Interrupted; stopping everything." in output
    assert demo_processes() == []


def test_real_mode_says_what_stripe_needs_before_starting_anything(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("apiVersion: v1\nkind: Config\n")
    env = dict(
        os.environ,
        PYTHONPATH=str(REPO_ROOT / "stack"),
        E2E_KUBECONFIG=str(kubeconfig),
        STRIPE_TEST_API_KEY="sk_test_placeholder",
        DEMO_RECEIVER_PORT="8123",
    )
    env.pop("DEMO_PUBLIC_URL", None)
    result = subprocess.run(
        [sys.executable, "-m", "devstack.demo"],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "set DEMO_PUBLIC_URL to a public https URL" in result.stderr
    assert "127.0.0.1:8123" in result.stderr
