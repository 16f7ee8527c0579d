"""The machine-wide kernel settings a kubelet changes, recorded before and restored after.

At every start the kubelet sets six sysctls of the whole machine to the values it wants
(`setupKernelTunables` in k8s.io/kubernetes pkg/kubelet/cm: vm.overcommit_memory=1,
vm.panic_on_oom=0, kernel.panic=10, kernel.panic_on_oops=1 and the two root key quotas).
They are not per network namespace, so the private namespace does not contain them. Several
nodes may run at once (a test session and `make demo`), so the values found before the first
one are kept in one file for the machine, with the PIDs of the launchers using them; the last
launcher to leave writes them back. Each launcher is listed as `PID:token` (one process may run
two nodes); one whose process died is dropped from the list the next time anyone looks, so a
killed run cannot keep the settings changed forever.

kube-proxy is told to leave its machine-wide settings alone (conntrack maximum and timeouts
0 in node/proxy.py); what it does set (route_localnet) is per network namespace.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from devstack.processes import pid_running

# What the kubelet changes (component-helpers node/util/sysctl names).
KUBELET_SYSCTLS = (
    "vm/overcommit_memory",
    "vm/panic_on_oom",
    "kernel/panic",
    "kernel/panic_on_oops",
    "kernel/keys/root_maxkeys",
    "kernel/keys/root_maxbytes",
)
PROC_SYS = Path("/proc/sys")
REGISTRY = Path("/run/devstack/kernel-settings.json")


def read(names: tuple[str, ...] = KUBELET_SYSCTLS, root: Path = PROC_SYS) -> dict[str, str]:
    """The current value of each sysctl."""
    return {name: (root / name).read_text().strip() for name in names}


@contextlib.contextmanager
def _locked(registry: Path) -> Iterator[dict[str, Any]]:
    registry.parent.mkdir(parents=True, exist_ok=True)
    with (registry.parent / (registry.name + ".lock")).open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        state: dict[str, Any] = json.loads(registry.read_text()) if registry.exists() else {}
        yield state
        if state.get("users"):
            registry.write_text(json.dumps(state))
        else:
            registry.unlink(missing_ok=True)


class KernelSettings:
    """Records the kubelet's sysctls for launcher `pid` and puts them back when it leaves."""

    def __init__(
        self, pid: int | None = None, registry: Path = REGISTRY, root: Path = PROC_SYS
    ) -> None:
        self.pid = os.getpid() if pid is None else pid
        self.user = f"{self.pid}:{secrets.token_hex(4)}"
        self.registry = registry
        self.root = root

    def join(self) -> None:
        """Before a kubelet starts: record the values unless another launcher already did."""
        with _locked(self.registry) as state:
            users = self._live_users(state)
            if not users:
                # Nobody uses them: what is there now is the machine's own.
                state["values"] = read(root=self.root)
            users.add(self.user)
            state["users"] = sorted(users)

    def leave(self) -> dict[str, str]:
        """After the kubelet stopped: if no other launcher remains, write the recorded values
        back; return what was written (empty when another node still runs)."""
        with _locked(self.registry) as state:
            users = self._live_users(state)
            users.discard(self.user)
            state["users"] = sorted(users)
            if users:
                return {}
            values = dict(state.get("values") or {})
            for name, value in values.items():
                path = self.root / name
                if path.read_text().strip() != value:
                    path.write_text(value)
            return values

    def _live_users(self, state: dict[str, Any]) -> set[str]:
        users = {str(user) for user in state.get("users") or []}
        live = {user for user in users if pid_running(int(user.partition(":")[0]))}
        if users and not live:
            # Every launcher that recorded them died without leaving: restore now, so the
            # values recorded next are the machine's own again.
            for name, value in dict(state.get("values") or {}).items():
                (self.root / name).write_text(value)
        return live
