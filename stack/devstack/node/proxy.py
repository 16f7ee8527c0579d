"""kube-proxy (iptables mode) on the node: Service addresses, inside the node's namespace only.

Its iptables rules are the node network namespace's own. It is told to leave the machine-wide
conntrack settings alone (maximum and timeouts 0: "do not set"), and to masquerade all Service
traffic: a Pod reaching a Service backed by a Pod on the same bridge then gets its answer
back through the node's connection tracking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.control_plane import Pki
from devstack.cluster.kubectl import write_kubeconfig
from devstack.node.mounts import MountNamespace
from devstack.node.network import NODE_NAME, POD_CIDR
from devstack.processes import ManagedProcess, StackError, tool

HEALTHZ_PORT = 10256
METRICS_PORT = 10249


def configuration(kubeconfig: Path) -> dict[str, Any]:
    """The KubeProxyConfiguration (kubeproxy.config.k8s.io/v1alpha1)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(kubeconfig)},
        "mode": "iptables",
        "hostnameOverride": NODE_NAME,
        "clusterCIDR": POD_CIDR,
        "healthzBindAddress": f"127.0.0.1:{HEALTHZ_PORT}",
        "metricsBindAddress": f"127.0.0.1:{METRICS_PORT}",
        "iptables": {"masqueradeAll": True, "localhostNodePorts": False},
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "oomScoreAdj": 0,
    }


class KubeProxy:
    """kube-proxy of the one node."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self._process: ManagedProcess | None = None

    @property
    def process(self) -> ManagedProcess:
        if self._process is None:
            raise StackError("kube-proxy was never started")
        return self._process

    def start(self, *, pki: Pki, server: str, mounts: MountNamespace) -> KubeProxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The bootstrap ClusterRoleBinding system:node-proxier names this user.
        cert, key = pki.client("kube-proxy", "system:kube-proxy")
        kubeconfig = self.workdir / "kubeconfig"
        write_kubeconfig(
            kubeconfig,
            {"server": server, "certificate-authority": str(pki.ca_cert)},
            {"client-certificate": str(cert), "client-key": str(key)},
        )
        config_path = self.workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(configuration(kubeconfig)))
        self._process = ManagedProcess(
            "kube-proxy",
            mounts.enter([str(tool("kube-proxy")), f"--config={config_path}", "--v=1"]),
            self.workdir / "kube-proxy.log",
        ).start()
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
