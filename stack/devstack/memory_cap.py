"""A memory cap for one process: a child of this process's memory cgroup with a limit, which
the kernel enforces (past it the kernel reclaims, then kills the process), as the kubelet
enforces a container's memory limit.

cgroup v1 (the `memory` controller; hosts with hybrid hierarchies mount it beside the unified
one) and cgroup v2 (`memory.max`) are both handled; creating a child needs root or a delegated
cgroup. A process joins before it runs anything: `command(argv)` wraps a command line so that
its shell writes its own pid into the cgroup and then execs the command.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Sequence
from pathlib import Path

from devstack.processes import StackError

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _own_cgroup() -> tuple[Path, int]:
    """Return (directory of this process's memory cgroup, cgroup version)."""
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if "memory" in controllers.split(","):
            return CGROUP_ROOT / "memory" / path.lstrip("/"), 1
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            directory = CGROUP_ROOT / line[3:].lstrip("/")
            if "memory" in (CGROUP_ROOT / "cgroup.controllers").read_text().split():
                return directory, 2
    raise StackError("No cgroup memory controller is mounted; a memory cap needs one.")


class MemoryCap:
    """A cgroup limited to `limit` bytes of memory (and of memory plus swap, where swap is
    accounted), made by `create` and removed by `remove`."""

    def __init__(self, directory: Path, version: int, limit: int) -> None:
        self.directory = directory
        self.version = version
        self.limit = limit

    @classmethod
    def create(cls, limit: int, name: str = "memory-cap") -> MemoryCap:
        """Make a child of this process's memory cgroup capped at `limit` bytes."""
        parent, version = _own_cgroup()
        directory = parent / f"{name}-{secrets.token_hex(3)}"
        try:
            directory.mkdir()
        except OSError as exc:
            raise StackError(
                f"Cannot create the cgroup {directory} ({exc.strerror}); a memory cap needs "
                "root or a delegated cgroup."
            ) from exc
        cap = cls(directory, version, limit)
        if version == 1:
            cap._write("memory.limit_in_bytes", str(limit))
            # Swap must not let the process grow past the cap either.
            with contextlib.suppress(FileNotFoundError):
                cap._write("memory.memsw.limit_in_bytes", str(limit))
        else:
            cap._write("memory.max", str(limit))
            with contextlib.suppress(FileNotFoundError):
                cap._write("memory.swap.max", "0")
        return cap

    def wrapper(self) -> list[str]:
        """A command prefix that runs the program after it inside this cgroup from its start
        (the shell joins the cgroup, then execs the program: the PID stays the program's)."""
        join = 'echo $$ > "$0/cgroup.procs" && exec "$@"'
        return ["/bin/sh", "-c", join, str(self.directory)]

    def command(self, argv: Sequence[str]) -> list[str]:
        """Return `argv` wrapped so that the process runs inside this cgroup from its start."""
        return [*self.wrapper(), *argv]

    def _write(self, name: str, value: str) -> None:
        (self.directory / name).write_text(value)

    def _read(self, name: str) -> str:
        return (self.directory / name).read_text()

    def peak(self) -> int:
        """The most memory the cgroup has used since it was made or last `reset_peak`."""
        return int(self._read("memory.max_usage_in_bytes" if self.version == 1 else "memory.peak"))

    def reset_peak(self) -> None:
        """Start measuring the peak afresh (where the kernel allows it)."""
        with contextlib.suppress(OSError):
            self._write("memory.max_usage_in_bytes" if self.version == 1 else "memory.peak", "0")

    def oom_kills(self) -> int:
        """How many processes of the cgroup the kernel killed for passing the cap."""
        name = "memory.oom_control" if self.version == 1 else "memory.events"
        for line in self._read(name).splitlines():
            key, _, value = line.partition(" ")
            if key == "oom_kill":
                return int(value)
        return 0

    def remove(self) -> None:
        """Remove the cgroup once its processes are gone (any left are moved to the parent)."""
        with contextlib.suppress(FileNotFoundError):
            for pid in self._read("cgroup.procs").split():
                with contextlib.suppress(OSError):
                    (self.directory.parent / "cgroup.procs").write_text(pid)
        for _ in range(50):  # the kernel lets go of a cgroup a moment after its last exit
            try:
                os.rmdir(self.directory)
                return
            except FileNotFoundError:
                return
            except OSError:
                time.sleep(0.1)
