"""The memory cap the hostile-connection tests run the receiver under: a process inside it
runs from its first instruction, is measured, and is killed by the kernel past the cap."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator

import pytest

from devstack.memory_cap import MemoryCap

pytestmark = pytest.mark.integration

LIMIT = 96 * 2**20


@pytest.fixture
def cap() -> Iterator[MemoryCap]:
    made = MemoryCap.create(LIMIT, "test-cap")
    yield made
    made.remove()
    assert not made.directory.exists()


def _run(cap: MemoryCap, megabytes: int) -> subprocess.CompletedProcess[str]:
    program = (
        "import pathlib, sys\n"
        "print(pathlib.Path('/proc/self/cgroup').read_text())\n"
        f"held = bytearray({megabytes} * 2**20)\n"
        "held[::4096] = b'x' * len(held[::4096])  # touch every page\n"
    )
    argv = cap.command([sys.executable, "-c", program])
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)


def test_a_process_within_the_cap_runs_inside_it_and_is_measured(cap: MemoryCap) -> None:
    result = _run(cap, 32)
    assert result.returncode == 0, result.stderr
    assert cap.directory.name in result.stdout  # it ran in the cgroup from the start
    assert 32 * 2**20 <= cap.peak() <= LIMIT
    assert cap.oom_kills() == 0


def test_a_process_past_the_cap_is_killed_by_the_kernel(cap: MemoryCap) -> None:
    result = _run(cap, 200)
    assert result.returncode == -9  # SIGKILL
    assert cap.oom_kills() == 1
    assert cap.peak() <= LIMIT
