"""Every command of README.md and docs/*.md that can run here is run, so the docs cannot rot.

The convention (docs/architecture.md, "Commands in the docs"): commands sit in ```console
blocks, one per `$ ` line, each block under a `<!-- docs-test: ... -->` marker that says whether
it runs here (`run`, `run stack`), is run by a named test (`covered-by PATH`), or needs a real
cluster or Stripe (`real-cluster REASON`, checked against what its commands contain).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cluster.control_plane import ControlPlane
from devstack.cluster.kubectl import Kubectl
from devstack.devenv import new_stripe_api_key
from devstack.processes import REPO_ROOT, TOOLS_BIN, VENV_BIN
from devstack.project.objects import CRD_NAME, apply_crd, random_cluster_id
from devstack.project.operator_process import OperatorProcess
from devstack.project.receiver_process import FedReceiver
from devstack.project.scene import RECEIVER_SECRET
from devstack.stripe_emulator.launcher import EmulatorProcess
from tests.docs.blocks import Block, all_blocks, console_blocks, documents

KINDS = ("run", "covered-by", "real-cluster")
# What a command must contain to claim it cannot run on the local stack, by reason.
REAL_CLUSTER_REASONS = {
    "pods": re.compile(r"kubectl (logs|exec|port-forward|rollout)\b|helm test\b|--wait\b"),
    "stripe-live": re.compile(r"sk_live_|dashboard\.stripe\.com"),
}
COMMAND_WORDS = re.compile(r"^ {4}(\$ )?(kubectl|helm|make|curl|stripe-webhook-\w+)\s")
# Pages allowed to write commands as indented blocks, outside this convention (none left: every
# page uses ```console blocks with a marker, or ```text for a synopsis).
UNCONVERTED: tuple[str, ...] = ()
BLOCK_TIMEOUT = 240
RECEIVER_NAMESPACE = "stripe-system"
# Short retries: an event refused before its receipt exists comes back within seconds.
RETRIES = (1.0, 2.0, 4.0, 8.0)
# Variables kept from one block to the next; the shell's own are left out.
SHELL_OWN = {"PWD", "OLDPWD", "SHLVL", "_", "BASHOPTS", "SHELLOPTS"}

BLOCKS = all_blocks()


def test_every_console_block_has_a_marker_and_only_commands() -> None:
    assert BLOCKS, "no ```console block found in README.md or docs/"
    for block in BLOCKS:
        assert block.marker is not None, f"{block.where}: ```console block without a marker"
        assert block.kind in KINDS, f"{block.where}: unknown marker '{block.marker}'"
        assert block.commands, f"{block.where}: no `$ ` command"
        stray = [line for line in block.lines if line.strip() and not line.startswith("$ ")]
        assert not stray, f"{block.where}: output belongs in a ```text block: {stray}"


def test_run_stack_is_the_only_run_variant() -> None:
    for block in BLOCKS:
        if block.kind == "run":
            assert block.argument in ("", "stack"), f"{block.where}: '{block.marker}'"


def test_covered_by_names_a_file_that_runs_each_command() -> None:
    covered = [block for block in BLOCKS if block.kind == "covered-by"]
    for block in covered:
        target = REPO_ROOT / block.argument
        assert target.is_file(), f"{block.where}: {block.argument} does not exist"
        text = target.read_text()
        for command in block.commands:
            assert command in text, f"{block.where}: {block.argument} never runs `{command}`"


def test_real_cluster_markers_are_justified() -> None:
    for block in BLOCKS:
        if block.kind != "real-cluster":
            continue
        pattern = REAL_CLUSTER_REASONS.get(block.argument)
        assert pattern is not None, f"{block.where}: unknown reason '{block.argument}'"
        for command in block.commands:
            assert pattern.search(command), (
                f"{block.where}: `{command}` shows no reason ({block.argument}) why it cannot "
                "run on the local stack; mark the block `run` instead"
            )


def test_no_command_hides_outside_console_blocks() -> None:
    for path in documents():
        relative = str(path.relative_to(REPO_ROOT))
        if relative in UNCONVERTED:
            continue
        inside = False
        for number, line in enumerate(path.read_text().splitlines(), start=1):
            if line.startswith("```"):
                inside = not inside
                continue
            assert inside or not COMMAND_WORDS.match(line), (
                f"{relative}:{number}: a command outside a ```console block is never tested"
            )


def test_unconverted_pages_still_exist() -> None:
    """The exemption list names real pages, so it shrinks as pages are converted."""
    for relative in UNCONVERTED:
        assert (REPO_ROOT / relative).is_file(), f"{relative} is gone; drop it from UNCONVERTED"


# --- running the `run` blocks -------------------------------------------------------------


class DocsStack:
    """The local stack the `run` blocks of one page see: a control plane and the Stripe
    emulator, then (for `run stack`) the receiver and an operator watching every namespace as
    local processes. These commands need no Pod, so the kubelet-less control plane serves them
    (the node's journey is `make demo`'s, tests/docs/test_demo.py).

    Always local, even with E2E_KUBECONFIG set: the pages name fixed namespaces and release
    names that must not land on a shared cluster."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.state = workdir / "shell-state.sh"
        self.plane = ControlPlane(workdir / "kube")
        self.emulator = EmulatorProcess(workdir / "stripe-emulator", retry_schedule=RETRIES)
        self.api_key = new_stripe_api_key()
        # Made (not started) now: its URL is in every block's environment from the first on.
        self.receiver = FedReceiver(
            self.plane.kubeconfig, RECEIVER_NAMESPACE, RECEIVER_SECRET, workdir / "receiver"
        )
        self.operator: OperatorProcess | None = None

    def start(self) -> DocsStack:
        self.plane.start()
        self.emulator.start()
        return self

    def kubectl(self) -> Kubectl:
        return Kubectl(self.plane.kubeconfig, self.workdir / "kube-cache")

    def start_services(self) -> None:
        """Start the receiver and the operator once, after the CRD exists."""
        if self.operator is not None:
            return
        kubectl = self.kubectl()
        if kubectl("get", "crd", CRD_NAME, check=False).returncode != 0:
            apply_crd(kubectl)
        kubectl("create", "namespace", RECEIVER_NAMESPACE, check=False)
        self.receiver.start()
        self.operator = OperatorProcess(
            self.plane.kubeconfig,
            self.emulator.base_url,
            None,
            self.workdir,
            random_cluster_id(),
            extra_args=(
                f"--receiver-namespace={RECEIVER_NAMESPACE}",
                f"--receiver-url={self.receiver.url}",
                f"--public-base-url={self.receiver.url}",
            ),
            name="operator",
        ).start()

    def environment(self) -> dict[str, str]:
        home = self.workdir / "home"
        home.mkdir(exist_ok=True)
        path = os.pathsep.join([str(TOOLS_BIN), str(VENV_BIN), "/usr/bin", "/bin"])
        return {
            "PATH": path,
            "HOME": str(home),
            "KUBECONFIG": str(self.plane.kubeconfig),
            "KUBECACHEDIR": str(self.workdir / "kube-cache"),
            "STRIPE_API_BASE": self.emulator.base_url,
            "STRIPE_API_KEY": self.api_key,
            "RECEIVER_URL": self.receiver.url,
            "LANG": "C.UTF-8",
        }

    def run(self, block: Block) -> subprocess.CompletedProcess[str]:
        """Run one block in bash; variables it sets are kept for the next block."""
        lines = ["set -a", f"[ -f {self.state} ] && source {self.state}", "set -euo pipefail"]
        for command in block.commands:
            lines.append(f"echo {json.dumps('$ ' + command)}")
            lines.append(command)
        lines.append(f"export -p > {self.state}")
        return subprocess.run(
            ["bash", "-c", "\n".join(lines)],
            cwd=REPO_ROOT,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=BLOCK_TIMEOUT,
        )

    def logs(self) -> str:
        parts = []
        for path in (self.workdir / "operator.log", self.workdir / "receiver" / "receiver.log"):
            if path.exists():
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                parts.append(f"--- {path.name}\n{tail}")
        return "\n".join(parts)

    def stop(self) -> None:
        for component in (self.operator, self.receiver, self.emulator, self.plane):
            if component is not None:
                component.stop()


def pages_with_run_blocks() -> list[Path]:
    return [path for path in documents() if any(b.kind == "run" for b in console_blocks(path))]


@pytest.fixture
def docs_stack(tmp_path: Path) -> Iterator[DocsStack]:
    stack = DocsStack(tmp_path)
    try:
        yield stack.start()
    finally:
        stack.stop()


@pytest.mark.integration
@pytest.mark.timeout(900)
@pytest.mark.parametrize(
    "page", pages_with_run_blocks(), ids=lambda path: str(path.relative_to(REPO_ROOT))
)
def test_run_blocks_succeed_on_the_local_stack(page: Path, docs_stack: DocsStack) -> None:
    for block in console_blocks(page):
        if block.kind != "run":
            continue
        if block.argument == "stack":
            docs_stack.start_services()
        result = docs_stack.run(block)
        assert result.returncode == 0, (
            f"{block.where}: exited {result.returncode}\n{result.stdout[-3000:]}\n"
            f"{result.stderr[-3000:]}\n{docs_stack.logs()}"
        )
