"""The node's own cgroup tree, so that stopping it stops every process it ever ran.

The kubelet (cgroupfs driver, `cgroupRoot` = this tree) puts each Pod under `<root>/kubepods`;
containerd is moved into `<root>/runtime` before it starts any shim, so the shims (which
daemonize away from containerd) and everything runc starts stay inside the tree. `kill()`
SIGKILLs every PID found in it, by PID, and `remove()` deletes its directories in every
hierarchy, deepest first. cgroups are v1 on this machine (plus a `unified` v2 mount holding
only hugetlb), so the tree exists once per hierarchy.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

from devstack.processes import StackError

CGROUP_FS = Path("/sys/fs/cgroup")
KILL_TIMEOUT = 20.0


def hierarchies() -> list[Path]:
    """The mounted cgroup hierarchies (one directory per v1 controller, plus `unified`)."""
    return sorted(path for path in CGROUP_FS.iterdir() if (path / "cgroup.procs").exists())


class NodeCgroups:
    """The cgroup `/<name>` in every hierarchy, created empty and removed with all inside."""

    def __init__(self, name: str) -> None:
        self.name = name

    @property
    def root(self) -> str:
        """The kubelet's `cgroupRoot`."""
        return f"/{self.name}"

    def create(self) -> NodeCgroups:
        """Create `/<name>` and `/<name>/runtime` in every hierarchy."""
        for hierarchy in hierarchies():
            for path in (hierarchy / self.name, hierarchy / self.name / "runtime"):
                path.mkdir(exist_ok=True)
                if hierarchy.name == "cpuset":
                    # A v1 cpuset starts with no CPUs and no memory nodes: copy the parent's,
                    # or no task may join it.
                    for knob in ("cpuset.cpus", "cpuset.mems"):
                        (path / knob).write_text((path.parent / knob).read_text())
        return self

    def adopt(self, pid: int) -> None:
        """Move process `pid` into `<name>/runtime` in every hierarchy; its children follow."""
        for hierarchy in hierarchies():
            (hierarchy / self.name / "runtime" / "cgroup.procs").write_text(str(pid))

    def _groups(self) -> Iterator[Path]:
        """Every cgroup directory of the tree, in every hierarchy, deepest first."""
        for hierarchy in hierarchies():
            top = hierarchy / self.name
            if top.is_dir():
                found = [Path(dirpath) for dirpath, _, _ in os.walk(top)]
                yield from sorted(found, key=lambda path: len(path.parts), reverse=True)

    def pids(self) -> set[int]:
        """Every PID in the tree."""
        found: set[int] = set()
        for group in self._groups():
            with contextlib.suppress(FileNotFoundError):
                found.update(int(line) for line in (group / "cgroup.procs").read_text().split())
        return found

    def kill(self) -> None:
        """SIGKILL every process in the tree, by PID, until none is left."""
        deadline = time.monotonic() + KILL_TIMEOUT
        while pids := self.pids():
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            if time.monotonic() > deadline:
                raise StackError(f"Processes {sorted(pids)} of cgroup {self.root} did not end.")
            time.sleep(0.1)

    def remove(self) -> None:
        """Remove the (empty) tree from every hierarchy."""
        for group in self._groups():
            # A cgroup whose last task just died may be busy for a moment.
            for _ in range(50):
                try:
                    group.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.1)
            else:
                raise StackError(f"Cgroup {group} could not be removed; it still has tasks.")
