"""One process of the node (the kubelet, kube-proxy): where it keeps its files, and its PID."""

from __future__ import annotations

from pathlib import Path

from devstack.processes import ManagedProcess, StackError


class NodeProcess:
    """A node component run as one process in the node's namespaces, stopped by its PID."""

    name = "node process"

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._process: ManagedProcess | None = None

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            raise StackError(f"{self.name} was never started")
        return self._process

    def restart(self) -> None:
        """Stop the process (SIGTERM, as a service manager does) and start it again with the
        same command line and files; what it started (Pods, rules) is left running."""
        self.process.stop()
        self.process.start()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
