"""The kubelet (built from k8s.io/kubernetes), its configuration, and the node's CNI network.

Settings this machine needs: cgroup v1 allowed (`failCgroupV1: false`), swap tolerated, the
cgroupfs driver inside the node's own cgroup tree; eviction and image garbage collection
thresholds low enough that a shared disk never evicts the stack's Pods; the node's address
given (`--node-ip`), since the API server reaches the kubelet by address. `syncFrequency` stays
at the kubelet's default (1 minute): how fast a changed Secret reaches a Pod is what users
see on their clusters, and the operator's nudge (docs/operator.md) is measured against it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.control_plane import Pki
from devstack.node.cgroups import NodeCgroups
from devstack.node.component import NodeProcess
from devstack.node.containerd import CNI_BIN_DIR
from devstack.node.mounts import MountNamespace
from devstack.node.network import (
    BRIDGE,
    CLUSTER_DOMAIN,
    DNS_SERVICE_IP,
    NODE_IP,
    NODE_NAME,
    POD_CIDR,
)
from devstack.processes import ManagedProcess, StackError, tool

KUBELET_PORT = 10250
ROOT_DIR = "/var/lib/kubelet"
HEALTHZ_PORT = 10248
CNI_NETWORK = "devstack"


def cni_config(ipam_dir: Path) -> dict[str, Any]:
    """The node's CNI network: a bridge with host-local addresses, and port mappings."""
    return {
        "cniVersion": "1.0.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                # No masquerading: nothing is ever sent beyond the node's namespace.
                "ipMasq": False,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    "dataDir": str(ipam_dir),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}},
        ],
    }


def write_cni_config(conf_dir: Path, ipam_dir: Path) -> None:
    for plugin in ("bridge", "host-local", "loopback", "portmap"):
        if not (CNI_BIN_DIR / plugin).exists():
            raise StackError(
                f"CNI plugin {CNI_BIN_DIR / plugin} is missing; run `make system-packages` "
                "(Debian: `apt-get install containernetworking-plugins`)."
            )
    conf_dir.mkdir(parents=True, exist_ok=True)
    (conf_dir / f"10-{CNI_NETWORK}.conflist").write_text(json.dumps(cni_config(ipam_dir)))


def configuration(
    workdir: Path, pki: Pki, runtime_endpoint: str, cgroups: NodeCgroups, serving: tuple[Path, Path]
) -> dict[str, Any]:
    """The KubeletConfiguration (kubelet.config.k8s.io/v1beta1)."""
    cert, key = serving
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": NODE_IP,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": HEALTHZ_PORT,
        "tlsCertFile": str(cert),
        "tlsPrivateKeyFile": str(key),
        "rotateCertificates": False,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki.ca_cert)},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": runtime_endpoint,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": cgroups.root,
        "failCgroupV1": False,
        "failSwapOn": False,
        "clusterDNS": [DNS_SERVICE_IP],
        "clusterDomain": CLUSTER_DOMAIN,
        # For Pods with dnsPolicy Default (CoreDNS itself): no upstream servers at all.
        "resolvConf": str(workdir / "upstream-resolv.conf"),
        "podLogsDir": str(workdir / "pod-logs"),
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
            "imagefs.inodesFree": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        # The session may not lower an OOM score (no CAP_SYS_RESOURCE): leave its own alone.
        "oomScoreAdj": 0,
        "maxPods": 110,
        "kubeAPIQPS": 50,
        "kubeAPIBurst": 100,
    }


class Kubelet(NodeProcess):
    """The kubelet of the one node, in the node's namespaces."""

    name = "the kubelet"

    def start(
        self,
        *,
        pki: Pki,
        server: str,
        runtime_endpoint: str,
        mounts: MountNamespace,
        cgroups: NodeCgroups,
    ) -> Kubelet:
        """Write its certificates, kubeconfig and configuration, and start it."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "upstream-resolv.conf").write_text("")
        kubeconfig = pki.client_kubeconfig(
            self.workdir / "kubeconfig",
            server,
            "kubelet-client",
            f"system:node:{NODE_NAME}",
            ["system:nodes"],
        )
        serving = pki.server("kubelet-serving", NODE_NAME, [NODE_IP, NODE_NAME])
        config_path = self.workdir / "config.yaml"
        config_path.write_text(
            yaml.safe_dump(configuration(self.workdir, pki, runtime_endpoint, cgroups, serving))
        )
        self._process = ManagedProcess(
            "kubelet",
            mounts.enter(
                [
                    str(tool("kubelet")),
                    f"--config={config_path}",
                    f"--kubeconfig={kubeconfig}",
                    # The default, inside the node's mount namespace (a tmpfs of its own): its
                    # sockets' paths stay short, and it goes with the namespace.
                    f"--root-dir={ROOT_DIR}",
                    f"--cert-dir={self.workdir / 'pki'}",
                    f"--node-ip={NODE_IP}",
                    f"--hostname-override={NODE_NAME}",
                    "--v=1",
                ]
            ),
            self.workdir / "kubelet.log",
        ).start()
        return self
