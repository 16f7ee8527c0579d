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

from devstack import demo
from devstack.processes import REPO_ROOT, TOOLS_BIN
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
    """The local stack the `run` blocks of one page see, started as `make demo` starts it.

    Always local, even with E2E_KUBECONFIG set: the pages name fixed namespaces and release
    names that must not land on a shared cluster."""

    def __init__(self, workdir: Path) -> None:
        self.target = demo.Target(real=False, workdir=workdir, namespace="")
        self.state = workdir / "shell-state.sh"
        self.services_started = False

    def start(self) -> DocsStack:
        demo.start_local_stack(self.target)
        return self

    def start_services(self) -> None:
        """Start the receiver and the operator once, after the CRD exists."""
        if self.services_started:
            return
        kubectl = self.target.kubectl()
        crd = kubectl("get", "crd", "stripewebhooks.stripe.operator.dev", check=False)
        if crd.returncode != 0:
            demo.install_crd(kubectl)
        demo.start_receiver(self.target)
        demo.start_operator(self.target)
        self.services_started = True

    def environment(self) -> dict[str, str]:
        home = self.target.workdir / "home"
        home.mkdir(exist_ok=True)
        path = os.pathsep.join([str(TOOLS_BIN), str(demo.VENV_BIN), "/usr/bin", "/bin"])
        return {
            "PATH": path,
            "HOME": str(home),
            "KUBECONFIG": str(self.target.kubeconfig),
            "KUBECACHEDIR": str(self.target.workdir / "kube-cache"),
            "STRIPE_API_BASE": self.target.stripe_base,
            "STRIPE_API_KEY": self.target.api_key,
            "RECEIVER_URL": self.target.receiver_url,
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
        for name in ("operator.log", "receiver.log"):
            path = self.target.workdir / name
            if path.exists():
                tail = "\n".join(path.read_text(errors="replace").splitlines()[-15:])
                parts.append(f"--- {name}\n{tail}")
        return "\n".join(parts)


def pages_with_run_blocks() -> list[Path]:
    return [path for path in documents() if any(b.kind == "run" for b in console_blocks(path))]


@pytest.fixture
def docs_stack(tmp_path: Path) -> Iterator[DocsStack]:
    stack = DocsStack(tmp_path)
    try:
        yield stack.start()
    finally:
        stack.target.stop_all()


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
