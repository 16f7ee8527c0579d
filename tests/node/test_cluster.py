"""The local node is a real cluster: Pods from the project's image, cluster DNS, volumes from
the default StorageClass, `kubectl logs` and `exec` from the host, a network nothing leaves,
and a stop that leaves nothing behind."""

from __future__ import annotations

import json
import secrets
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from devstack.cluster.control_plane import KUBERNETES_SERVICE_IP
from devstack.cluster.kubectl import Kubectl
from devstack.image import store
from devstack.image.images import PROJECT_IMAGE
from devstack.node import sysctls
from devstack.node.cluster import NodeCluster
from devstack.node.netns import NETNS_RUN_DIR
from devstack.node.network import NODE_NAME, POD_CIDR

pytestmark = pytest.mark.integration

POD_TIMEOUT = 120.0


def _pod(name: str, command: list[str], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "securityContext": {"runAsNonRoot": True, "runAsUser": 10001},
            "containers": [
                {
                    "name": "main",
                    "image": PROJECT_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": command,
                    **spec.pop("container", {}),
                }
            ],
            **spec,
        },
    }


def _run_pod(kubectl: Kubectl, namespace: str, pod: dict[str, Any]) -> tuple[str, str]:
    """Create the Pod, wait until it ends; return (phase, its log read from the host)."""
    name = pod["metadata"]["name"]
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(pod))
    deadline = time.monotonic() + POD_TIMEOUT
    phase = ""
    while time.monotonic() < deadline:
        phase = kubectl(
            "get", "pod", name, "-n", namespace, "-o", "jsonpath={.status.phase}"
        ).stdout
        if phase in ("Succeeded", "Failed"):
            break
        time.sleep(0.5)
    logs = kubectl("logs", name, "-n", namespace, check=False)
    return phase, logs.stdout + logs.stderr


@pytest.fixture
def namespace(node_cluster: NodeCluster) -> Any:
    with node_cluster.kubectl().temporary_namespace(f"node-{secrets.token_hex(3)}") as name:
        yield name


def test_node_is_ready_with_the_node_address(node_cluster: NodeCluster) -> None:
    node = json.loads(node_cluster.kubectl()("get", "node", NODE_NAME, "-o", "json").stdout)
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == "10.250.0.1"
    assert node["status"]["nodeInfo"]["containerRuntimeVersion"].startswith("containerd://")


def test_pod_of_the_project_image_runs_and_its_log_reaches_the_host(
    node_cluster: NodeCluster, namespace: str
) -> None:
    script = "import os; print('uid', os.getuid()); import stripe_webhook_receiver"
    phase, log = _run_pod(
        node_cluster.kubectl(), namespace, _pod("hello", ["python", "-c", script])
    )
    assert phase == "Succeeded", log
    assert "uid 10001" in log


def test_service_names_resolve_in_pods_through_cluster_dns(
    node_cluster: NodeCluster, namespace: str
) -> None:
    script = (
        "import socket; print(socket.gethostbyname('kubernetes.default.svc.cluster.local'));"
        "print(socket.gethostbyname('kubernetes.default'))"
    )
    phase, log = _run_pod(node_cluster.kubectl(), namespace, _pod("dns", ["python", "-c", script]))
    assert phase == "Succeeded", log
    assert log.split() == [KUBERNETES_SERVICE_IP, KUBERNETES_SERVICE_IP]


def test_pods_reach_the_api_server_through_the_kubernetes_service(
    node_cluster: NodeCluster, namespace: str
) -> None:
    # In-cluster config: the Service's address, the mounted token and CA, as kopf uses them.
    script = (
        "import ssl, urllib.request, os\n"
        "base = '/var/run/secrets/kubernetes.io/serviceaccount/'\n"
        "token = open(base + 'token').read()\n"
        "context = ssl.create_default_context(cafile=base + 'ca.crt')\n"
        "url = 'https://' + os.environ['KUBERNETES_SERVICE_HOST'] + '/version'\n"
        "request = urllib.request.Request(url, headers={'Authorization': 'Bearer ' + token})\n"
        "print(urllib.request.urlopen(request, context=context, timeout=10).status)\n"
    )
    phase, log = _run_pod(node_cluster.kubectl(), namespace, _pod("api", ["python", "-c", script]))
    assert phase == "Succeeded", log
    assert log.strip() == "200"


def test_default_storage_class_gives_a_claim_a_volume(
    node_cluster: NodeCluster, namespace: str
) -> None:
    kubectl = node_cluster.kubectl()
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "data"},
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Mi"}}},
    }
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(claim))
    writer = _pod(
        "writer",
        ["python", "-c", "open('/data/proof', 'w').write('written in a pod')"],
        container={"volumeMounts": [{"name": "data", "mountPath": "/data"}]},
        volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}],
    )
    phase, log = _run_pod(kubectl, namespace, writer)
    assert phase == "Succeeded", log
    bound = json.loads(kubectl("get", "pvc", "data", "-n", namespace, "-o", "json").stdout)
    assert bound["status"]["phase"] == "Bound"
    assert bound["spec"]["storageClassName"] == "standard"
    volume = json.loads(kubectl("get", "pv", bound["spec"]["volumeName"], "-o", "json").stdout)
    path = Path(volume["spec"]["hostPath"]["path"])
    assert (path / "proof").read_text() == "written in a pod"


def test_kubectl_exec_works_from_the_host(node_cluster: NodeCluster, namespace: str) -> None:
    kubectl = node_cluster.kubectl()
    sleeper = _pod("sleeper", ["python", "-c", "import time; time.sleep(600)"])
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(sleeper))
    kubectl(
        "wait",
        "--for=condition=Ready",
        "pod/sleeper",
        "-n",
        namespace,
        "--timeout=120s",
        timeout=130,
    )
    answer = kubectl("exec", "-n", namespace, "sleeper", "--", "python", "-c", "print(6 * 7)")
    assert answer.stdout.strip() == "42"


def test_no_route_leads_out_of_the_node_namespace(node_cluster: NodeCluster) -> None:
    assert node_cluster.netns is not None
    name = node_cluster.netns.name
    routes = json.loads(
        subprocess.run(
            ["ip", "-n", name, "-json", "route", "show"], capture_output=True, text=True, check=True
        ).stdout
    )
    destinations = {route["dst"] for route in routes}
    # The Service range (to the port-less node bridge) and the Pods' bridge: no default route.
    assert "default" not in destinations
    assert destinations <= {"10.0.0.0/24", POD_CIDR}
    links = json.loads(
        subprocess.run(
            ["ip", "-n", name, "-json", "-details", "link", "show"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
    )
    kinds = {link["ifname"]: link.get("linkinfo", {}).get("info_kind") for link in links}
    for interface, kind in kinds.items():
        # lo, two bridges (node0, cni0), and one veth per Pod whose other end is in the Pod.
        assert interface == "lo" or kind in ("bridge", "veth"), (interface, kind)


def test_a_stopped_node_leaves_nothing_and_restores_the_kernel_settings(
    tmp_path: Path, node_cluster: NodeCluster
) -> None:
    # A second node beside the session's: it shares the machine-wide settings record.
    before = sysctls.read()
    second = NodeCluster(tmp_path / "second").start()
    try:
        recorded = json.loads(sysctls.REGISTRY.read_text())
        assert second.kernel.user in recorded["users"]
        # What the kubelet wants, while it runs.
        assert sysctls.read()["kernel/panic_on_oops"] == "1"
    finally:
        second.stop()
    assert second.leftovers() == []
    assert second.netns is not None
    assert not (NETNS_RUN_DIR / second.netns.name).exists()
    assert str(tmp_path) not in Path("/proc/self/mounts").read_text()
    # The session's node still runs, so the settings stay as it needs them; the record keeps
    # the machine's own values for the last one out (unit-tested in tests/stack).
    assert sysctls.read() == before
    assert json.loads(sysctls.REGISTRY.read_text())["values"] == recorded["values"]


def test_building_the_images_leaves_no_mount_in_the_image_store(node_cluster: NodeCluster) -> None:
    # The session's node had its images built (or found unchanged) before it started; the
    # overlay driver's self-mount of its home must be gone, or `rm -rf` of the checkout fails.
    root = str(store.STORAGE_ROOT.resolve())
    assert (Path(root) / "storage").is_dir()
    points = [line.split()[1] for line in Path("/proc/self/mounts").read_text().splitlines()]
    assert [p for p in points if p == root or p.startswith(root + "/")] == []
