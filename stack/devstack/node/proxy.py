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
from devstack.node.component import NodeProcess
from devstack.node.mounts import MountNamespace
from devstack.node.network import NODE_NAME, POD_CIDR
from devstack.processes import ManagedProcess, tool

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


class KubeProxy(NodeProcess):
    """kube-proxy of the one node."""

    name = "kube-proxy"

    def start(self, *, pki: Pki, server: str, mounts: MountNamespace) -> KubeProxy:
        self.workdir.mkdir(parents=True, exist_ok=True)
        # The bootstrap ClusterRoleBinding system:node-proxier names this user.
        kubeconfig = pki.client_kubeconfig(
            self.workdir / "kubeconfig", server, "kube-proxy", "system:kube-proxy"
        )
        config_path = self.workdir / "config.yaml"
        config_path.write_text(yaml.safe_dump(configuration(kubeconfig)))
        self._process = ManagedProcess(
            "kube-proxy",
            mounts.enter([str(tool("kube-proxy")), f"--config={config_path}", "--v=1"]),
            self.workdir / "kube-proxy.log",
        ).start()
        return self
