"""A real single-node Kubernetes cluster, every part of it inside one private network namespace.

`NodeCluster(workdir).start()` builds (when their inputs changed) and imports the images, then
starts, in this order: the network namespace (node/network.py), the control plane with
kube-scheduler serving the node's address (cluster/control_plane.py), a forwarder giving the
host a 127.0.0.1 port for the API server (node/forward.py), the node's mount namespace and
cgroup tree, containerd, the kubelet, kube-proxy, and the add-ons (CoreDNS, the default
StorageClass). `stop()` undoes all of it, newest first: every process by PID (and every Pod's
by the cgroup tree), the cgroups, the namespaces (and with them every mount, veth and
iptables rule), and the kernel settings the kubelet changed. `leftovers()` says what, if
anything, is still there; a test checks it is nothing.

The host-side `kubeconfig` reaches the API server through the forwarder, so `kubectl`, `helm`,
`kubectl logs` and `kubectl exec` work from any shell. `run_inside(argv)` starts a process
inside the node's namespaces (the Stripe emulator runs there, so its deliveries go through the
receiver's Service as a Pod's would), and `expose(host, port)` forwards one more address.
`restart_containerd()` and `restart_kubelet()` are the node's own faults: each stops one
component by its PID and starts it again on the same state, the Pods running on meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import httpx

from devstack.cluster.control_plane import ControlPlane, NodeAddresses
from devstack.cluster.kubectl import Kubectl, write_kubeconfig
from devstack.image.images import node_archives
from devstack.node import addons, network
from devstack.node.cgroups import NodeCgroups
from devstack.node.containerd import Containerd
from devstack.node.forward import Forwarder
from devstack.node.kubelet import HEALTHZ_PORT, Kubelet, write_cni_config
from devstack.node.mounts import MountNamespace
from devstack.node.netns import NETNS_RUN_DIR, NetworkNamespace
from devstack.node.proxy import KubeProxy
from devstack.node.sysctls import KernelSettings, read
from devstack.processes import ManagedProcess, StackError, pid_running, wait_until
from devstack.stripe_emulator.launcher import EmulatorProcess

NODE_READY_TIMEOUT = 120.0
# The emulator's port on the node's address (every port in the namespace is the stack's own).
EMULATOR_PORT = 12111
# The resolver every process in the node's mount namespace uses: the cluster's DNS.
NODE_RESOLV_CONF = (
    f"nameserver {network.DNS_SERVICE_IP}\n"
    f"search svc.{network.CLUSTER_DOMAIN} {network.CLUSTER_DOMAIN}\n"
    "options ndots:5 timeout:1 attempts:3\n"
)


class NodeCluster:
    """The node's whole cluster; `kubeconfig` and `server` reach it from the host."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.kubeconfig = workdir / "kubeconfig"
        self.server = ""
        self.name = f"devstack-{os.getpid()}-{secrets.token_hex(3)}"
        self.netns: NetworkNamespace | None = None
        self.control_plane: ControlPlane | None = None
        self.cgroups = NodeCgroups(self.name)
        self.kernel = KernelSettings()
        self.mounts: MountNamespace | None = None
        self.containerd = Containerd(workdir / "containerd", workdir / "cni" / "net.d")
        self.kubelet = Kubelet(workdir / "kubelet")
        self.proxy = KubeProxy(workdir / "kube-proxy")
        self.start_seconds: dict[str, float] = {}
        self._forwarders: list[Forwarder] = []
        self._inside: list[ManagedProcess] = []
        self._joined_kernel = False
        self._made_cgroups = False

    def __repr__(self) -> str:
        return f"NodeCluster(server={self.server!r}, workdir={str(self.workdir)!r})"

    def __enter__(self) -> NodeCluster:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- starting ----------------------------------------------------------------------------

    def start(self) -> NodeCluster:
        """Start everything and wait until the node is Ready with DNS and storage; on any
        failure, stop what had started and raise."""
        try:
            self._timed("images", self._build_images)
            self._timed("control plane", self._start_control_plane)
            self._timed("node", self._start_node)
            self._timed("add-ons", self._install_addons)
        except BaseException:
            self.stop()
            raise
        return self

    def _timed(self, what: str, step: Callable[[], None]) -> None:
        began = time.monotonic()
        step()
        self.start_seconds[what] = time.monotonic() - began

    def _build_images(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._archives = node_archives(self.workdir / "logs" / "image-build.log")

    def _start_control_plane(self) -> None:
        self.netns = network.create()
        plane = ControlPlane(self.workdir / "kube", node=NodeAddresses(network.NODE_IP))
        self.control_plane = plane
        with self.netns.entered():
            plane.start()
        api = self.expose(network.NODE_IP, int(plane.server.rsplit(":", 1)[1]))
        self.server = api.url(scheme="https")
        admin = plane.pki
        write_kubeconfig(
            self.kubeconfig,
            {"server": self.server, "certificate-authority": str(admin.ca_cert)},
            {"client-certificate": str(admin.admin_cert), "client-key": str(admin.admin_key)},
        )

    def _start_node(self) -> None:
        assert self.netns is not None
        assert self.control_plane is not None
        self.mounts = MountNamespace(self.workdir / "mounts", self.netns, NODE_RESOLV_CONF).start()
        self.cgroups.create()
        self._made_cgroups = True
        self.containerd.start(self.mounts, self.cgroups)
        self.containerd.import_images(self._archives)
        write_cni_config(self.workdir / "cni" / "net.d", self.workdir / "cni" / "ipam")
        self.kernel.join()
        self._joined_kernel = True
        pki, server = self.control_plane.pki, self.control_plane.server
        self.kubelet.start(
            pki=pki,
            server=server,
            runtime_endpoint=self.containerd.endpoint,
            mounts=self.mounts,
            cgroups=self.cgroups,
        )
        self.proxy.start(pki=pki, server=server, mounts=self.mounts)
        kubectl = self.kubectl()

        def ready() -> bool:
            self.kubelet.process.check_alive()
            self.proxy.process.check_alive()
            result = kubectl(
                "get",
                "node",
                network.NODE_NAME,
                "-o",
                "jsonpath={.status.conditions[?(@.type=='Ready')].status}",
                check=False,
            )
            return result.stdout.strip() == "True"

        wait_until(
            ready, timeout=NODE_READY_TIMEOUT, what=f"node {network.NODE_NAME}", interval=0.25
        )

    def _install_addons(self) -> None:
        addons.install(self.kubectl(), self.workdir / "volumes")

    # --- using it ----------------------------------------------------------------------------

    def kubectl(self) -> Kubectl:
        """kubectl with the host-side admin kubeconfig."""
        return Kubectl(self.kubeconfig, self.workdir / "kube-cache")

    def expose(self, host: str, port: int) -> Forwarder:
        """Forward a new 127.0.0.1 port of the host to `host:port` inside the node."""
        if self.netns is None:
            raise StackError("the node cluster was never started")
        forwarder = Forwarder(self.workdir / "forward", self.netns, [(host, port)]).start()
        self._forwarders.append(forwarder)
        return forwarder

    def run_inside(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess:
        """Start a process inside the node's network and mount namespaces (stopped with it)."""
        if self.mounts is None:
            raise StackError("the node cluster was never started")
        process = ManagedProcess(
            name, self.mounts.enter(argv), self.workdir / "logs" / f"{name}.log", env=env, cwd=cwd
        ).start()
        self._inside.append(process)
        return process

    def start_emulator(self, workdir: Path, **options: Any) -> EmulatorProcess:
        """Start the Stripe emulator inside the node, on the node's address (where Pods reach
        it) and delivering to Services by their DNS names; the host reaches it at `base_url`.
        `options` go to EmulatorProcess (a retry schedule, a rate limit)."""
        return EmulatorProcess(
            workdir,
            host=network.NODE_IP,
            port=EMULATOR_PORT,
            delivery_domain=f"svc.{network.CLUSTER_DOMAIN}",
            node=self,
            **options,
        ).start()

    # --- faults of the node -----------------------------------------------------------------

    def restart_containerd(self) -> None:
        """Restart containerd (the Pods' containers keep running under their shims) and wait
        until the kubelet reports the node Ready on it again."""
        self.containerd.restart(self.cgroups)
        self._wait_node_ready()

    def restart_kubelet(self) -> None:
        """Restart the kubelet (the Pods keep running under containerd) and wait until it
        answers its health check and reports the node Ready again."""
        self.kubelet.restart()
        self._wait_node_ready()

    def _wait_node_ready(self) -> None:
        kubectl = self.kubectl()

        def ready() -> bool:
            self.kubelet.process.check_alive()
            self.containerd.process.check_alive()
            if not self._kubelet_healthy():
                return False
            conditions = kubectl(
                "get", "node", network.NODE_NAME, "-o", "jsonpath={.status.conditions}"
            ).stdout
            return any(
                item["type"] == "Ready" and item["status"] == "True"
                for item in json.loads(conditions or "[]")
            )

        wait_until(
            ready, timeout=NODE_READY_TIMEOUT, what=f"node {network.NODE_NAME}", interval=0.25
        )

    def _kubelet_healthy(self) -> bool:
        assert self.netns is not None
        with self.netns.entered():
            answer = httpx.get(f"http://127.0.0.1:{HEALTHZ_PORT}/healthz", timeout=2)
        return answer.status_code == 200

    def pids(self) -> list[int]:
        """PIDs of every process this cluster started directly."""
        processes = [
            *self._inside,
            *(
                p
                for p in (self.proxy._process, self.kubelet._process, self.containerd._process)
                if p
            ),
        ]
        pids = [process.pid for process in processes if process.popen is not None]
        pids += [forwarder.pid for forwarder in self._forwarders]
        if self.mounts is not None:
            with contextlib.suppress(StackError):
                pids.append(self.mounts.pid)
        if self.control_plane is not None:
            pids += self.control_plane.pids()
        return pids

    # --- stopping ----------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop everything, newest first; restore what the kubelet changed; remove the cgroup
        tree and the namespaces. Safe to call twice and after a failed start."""
        for process in reversed(self._inside):
            process.stop()
        self._inside.clear()
        self.proxy.stop()
        self.kubelet.stop()
        if self._joined_kernel:
            self.kernel.leave()
            self._joined_kernel = False
        if self._made_cgroups:
            # Every Pod's processes and containerd's shims, then containerd itself.
            self.cgroups.kill()
        self.containerd.stop()
        if self._made_cgroups:
            self.cgroups.remove()
            self._made_cgroups = False
        if self.mounts is not None:
            self.mounts.stop()
        for forwarder in reversed(self._forwarders):
            forwarder.stop()
        self._forwarders.clear()
        if self.control_plane is not None:
            self.control_plane.stop()
        if self.netns is not None:
            self.netns.delete()
        # The container store and the volumes are large; logs stay for the reader.
        for state in ("containerd/root", "containerd/state", "volumes"):
            shutil.rmtree(self.workdir / state, ignore_errors=True)

    def leftovers(self) -> list[str]:
        """What of this cluster is still there: processes, cgroups, the namespace."""
        found = [f"process {pid}" for pid in self.pids() if pid_running(pid)]
        found += [f"cgroup pid {pid}" for pid in self.cgroups.pids()]
        found += [
            f"cgroup {hierarchy}"
            for hierarchy in Path("/sys/fs/cgroup").iterdir()
            if (hierarchy / self.name).exists()
        ]
        if self.netns is not None and (NETNS_RUN_DIR / self.netns.name).exists():
            found.append(f"network namespace {self.netns.name}")
        return found


def kernel_settings() -> dict[str, str]:
    """The machine-wide settings a kubelet changes, as they are now (tests compare)."""
    return read()
