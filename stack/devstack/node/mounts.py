"""The node's private mount namespace, so that nothing the node mounts outlives it.

containerd mounts each container's root filesystem and each Pod's network namespace file;
the kubelet mounts a tmpfs per Secret volume. All of that happens inside one mount namespace
made for the node (`unshare --mount --propagation private`, held open by a `sleep` whose PID
the launcher stops), so none of it reaches the machine's mount table, and all of it is gone
once the node's last process ends, even after a crash.

Inside, fresh tmpfs cover `/run` (containerd's socket and its shims', runc's state, Pod network
namespaces, the iptables lock), `/var/lib` (the kubelet's root, with its sockets and the Pods'
volumes; the CNI cache) and `/var/log` (the kubelet's `/var/log/containers` links), which the
binaries use at fixed paths; and the node's own
`resolv.conf`, naming the cluster DNS, covers `/etc/resolv.conf`, so a server of the stack that
runs inside (the Stripe emulator) resolves Service names as a Pod does.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import Path

from devstack.node.netns import NETNS_RUN_DIR, NetworkNamespace
from devstack.processes import ManagedProcess, StackError, wait_until

# Paths covered by a tmpfs of the node's own.
PRIVATE_DIRS = ("/run", "/var/lib", "/var/log")
READY_TIMEOUT = 10.0


class MountNamespace:
    """A mount namespace held open by a process, and the prefix that runs a command in it
    (and in the node's network namespace)."""

    def __init__(self, workdir: Path, netns: NetworkNamespace, resolv_conf: str) -> None:
        self.workdir = workdir
        self.netns = netns
        self.resolv_conf = resolv_conf
        self._holder: ManagedProcess | None = None

    @property
    def pid(self) -> int:
        if self._holder is None:
            raise StackError("the node's mount namespace was never made")
        return self._holder.pid

    def start(self) -> MountNamespace:
        """Make the namespace, its mounts, and wait until they are in place."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        resolv = self.workdir / "resolv.conf"
        resolv.write_text(self.resolv_conf)
        ready = self.workdir / "mounts.ready"
        ready.unlink(missing_ok=True)
        steps = [f"mount -t tmpfs -o mode=0755 devstack-node {path}" for path in PRIVATE_DIRS]
        steps += [
            f"mount --bind {shlex.quote(str(resolv))} /etc/resolv.conf",
            f"touch {shlex.quote(str(ready))}",
            # `exec`: the holder's PID is the one the launcher stops.
            "exec sleep 2147483647",
        ]
        self._holder = ManagedProcess(
            "mount-namespace",
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-ec", "; ".join(steps)],
            self.workdir / "mount-namespace.log",
        ).start()
        try:
            wait_until(ready.exists, timeout=READY_TIMEOUT, what="the node's mount namespace")
        except StackError:
            self._holder.check_alive()
            raise
        return self

    def enter(self, argv: Sequence[str]) -> list[str]:
        """`argv` run inside the node's mount and network namespaces (nsenter execs it: the
        PID of the process started is the command's own)."""
        return [
            "nsenter",
            f"--mount=/proc/{self.pid}/ns/mnt",
            f"--net={NETNS_RUN_DIR / self.netns.name}",
            "--",
            *argv,
        ]

    def stop(self) -> None:
        """End the holder; the namespace goes once the node's other processes ended too."""
        if self._holder is not None:
            self._holder.stop()
