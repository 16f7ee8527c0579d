"""The node's network: one private network namespace holding the whole cluster.

Everything of the node's cluster runs inside it: the control plane, containerd and the Pods'
own namespaces (linked only to the CNI bridge inside it), kubelet, kube-proxy and its iptables
rules, the Stripe emulator and the stack's other servers. Its interfaces are `lo`, a port-less
bridge `node0` holding the node's address, and (once Pods run) the CNI bridge with one veth per Pod.
Nothing links it to the machine's own network, so no Pod, Service or server address is
reachable from outside, and no packet from inside can leave; the host reaches the API server
and the servers it needs through devstack.node.forward.
"""

from __future__ import annotations

from devstack.cluster.control_plane import SERVICE_CLUSTER_IP_RANGE
from devstack.node.netns import NetworkNamespace

NODE_NAME = "devstack-node"
NODE_IP = "10.250.0.1"
NODE_LINK = "node0"
# Pod addresses (host-local IPAM of the CNI bridge); the bridge itself takes the first.
POD_CIDR = "10.244.0.0/24"
BRIDGE = "cni0"
# The cluster DNS Service (CoreDNS), inside SERVICE_CLUSTER_IP_RANGE, as kubeadm places it.
DNS_SERVICE_IP = "10.0.0.10"
CLUSTER_DOMAIN = "cluster.local"
NAMESPACE_PREFIX = "devstack-node"


def create() -> NetworkNamespace:
    """A fresh namespace with `lo` and the node's address, routing Service addresses to the
    node (kube-proxy's rules then send them to Pods) and forwarding between Pods."""
    namespace = NetworkNamespace.create([], prefix=NAMESPACE_PREFIX)
    try:
        namespace.add_stub(NODE_LINK, NODE_IP, routes=[SERVICE_CLUSTER_IP_RANGE])
        # Pod to Service to Pod crosses the node's routing: forwarding inside this namespace
        # only (the sysctl is per network namespace).
        namespace.set_sysctl("net/ipv4/ip_forward", "1")
    except BaseException:
        namespace.delete()
        raise
    return namespace
