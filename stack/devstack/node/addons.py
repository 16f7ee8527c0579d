"""The node's cluster add-ons, as any cluster has them: DNS and a default StorageClass.

- CoreDNS (built from its Go module, image from devstack.image) serves `cluster.local` from the
  API server at the `kube-dns` Service address the kubelet gives every Pod. It forwards
  nothing: there is no upstream to reach.
- The local-path provisioner (rancher/local-path-provisioner, the one kind ships) gives each
  PersistentVolumeClaim of the default StorageClass `standard` a directory under the node's
  workdir, created and removed by a helper Pod running the Debian base image.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from devstack.cluster.kubectl import Kubectl
from devstack.image.images import BASE_IMAGE, COREDNS_IMAGE, LOCAL_PATH_IMAGE
from devstack.node.network import CLUSTER_DOMAIN, DNS_SERVICE_IP

DNS_NAMESPACE = "kube-system"
STORAGE_NAMESPACE = "local-path-storage"
STORAGE_CLASS = "standard"
PROVISIONER = "rancher.io/local-path"
# An unprivileged port: CoreDNS runs as a non-root user without capabilities; the Service
# still offers port 53.
DNS_PORT = 1053
READY_TIMEOUT = "180s"

COREFILE = f"""\
.:{DNS_PORT} {{
    errors
    health :8080
    ready :8181
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa ip6.arpa {{
        pods insecure
        fallthrough in-addr.arpa ip6.arpa
    }}
    cache 30
    loop
    reload
}}
"""

# The provisioner's helper Pod runs these with VOL_DIR set to the volume's directory.
SETUP_SCRIPT = 'set -eu\nmkdir -m 0777 -p "$VOL_DIR"\n'
TEARDOWN_SCRIPT = 'set -eu\nrm -rf "$VOL_DIR"\n'

RESTRICTED_CONTAINER = {
    "allowPrivilegeEscalation": False,
    "readOnlyRootFilesystem": True,
    "runAsNonRoot": True,
    "capabilities": {"drop": ["ALL"]},
    "seccompProfile": {"type": "RuntimeDefault"},
}


def _labels(app: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": app, "app.kubernetes.io/part-of": "devstack"}


def _meta(name: str, namespace: str | None, app: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name, "labels": _labels(app)}
    if namespace is not None:
        meta["namespace"] = namespace
    return meta


def _cluster_role(
    name: str, app: str, rules: list[dict[str, Any]], subject: str, ns: str
) -> list[dict[str, Any]]:
    return [
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRole",
            "metadata": _meta(name, None, app),
            "rules": rules,
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": _meta(name, None, app),
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": name,
            },
            "subjects": [{"kind": "ServiceAccount", "name": subject, "namespace": ns}],
        },
    ]


def _deployment(name: str, namespace: str, app: str, pod: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _meta(name, namespace, app),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": _labels(app)},
            "template": {"metadata": {"labels": _labels(app)}, "spec": pod},
        },
    }


def coredns() -> list[dict[str, Any]]:
    """CoreDNS: its RBAC, Corefile, Deployment and the `kube-dns` Service."""
    app = "coredns"
    rules = [
        {
            "apiGroups": [""],
            "resources": ["endpoints", "services", "pods", "namespaces"],
            "verbs": ["list", "watch"],
        },
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["list", "watch"],
        },
    ]
    pod = {
        "serviceAccountName": "coredns",
        "dnsPolicy": "Default",
        "priorityClassName": "system-cluster-critical",
        "securityContext": {"runAsUser": 65532, "runAsGroup": 65532},
        "containers": [
            {
                "name": "coredns",
                "image": COREDNS_IMAGE,
                "imagePullPolicy": "Never",
                "args": ["-conf", "/etc/coredns/Corefile"],
                "ports": [
                    {"name": "dns", "containerPort": DNS_PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "containerPort": DNS_PORT, "protocol": "TCP"},
                ],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8181}, "periodSeconds": 2},
                "livenessProbe": {"httpGet": {"path": "/health", "port": 8080}},
                "resources": {
                    "requests": {"cpu": "20m", "memory": "32Mi"},
                    "limits": {"memory": "128Mi"},
                },
                "securityContext": RESTRICTED_CONTAINER,
                "volumeMounts": [{"name": "config", "mountPath": "/etc/coredns", "readOnly": True}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": "coredns"}}],
    }
    return [
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta("coredns", DNS_NAMESPACE, app),
        },
        *_cluster_role("devstack:coredns", app, rules, "coredns", DNS_NAMESPACE),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("coredns", DNS_NAMESPACE, app),
            "data": {"Corefile": COREFILE},
        },
        _deployment("coredns", DNS_NAMESPACE, app, pod),
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta("kube-dns", DNS_NAMESPACE, app),
            "spec": {
                "clusterIP": DNS_SERVICE_IP,
                "selector": _labels(app),
                "ports": [
                    {"name": "dns", "port": 53, "targetPort": DNS_PORT, "protocol": "UDP"},
                    {"name": "dns-tcp", "port": 53, "targetPort": DNS_PORT, "protocol": "TCP"},
                ],
            },
        },
    ]


def local_path(volumes_dir: Path) -> list[dict[str, Any]]:
    """The local-path provisioner and the default StorageClass it serves."""
    app = "local-path-provisioner"
    account = "local-path-provisioner"
    rules = [
        {
            "apiGroups": [""],
            "resources": ["nodes", "persistentvolumeclaims", "configmaps", "pods", "pods/log"],
            "verbs": ["get", "list", "watch"],
        },
        {
            "apiGroups": [""],
            "resources": ["persistentvolumes"],
            "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
        {
            "apiGroups": ["storage.k8s.io"],
            "resources": ["storageclasses"],
            "verbs": ["get", "list", "watch"],
        },
    ]
    helper_pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "containers": [{"name": "helper-pod", "image": BASE_IMAGE, "imagePullPolicy": "Never"}],
        },
    }
    config = {
        "nodePathMap": [{"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(volumes_dir)]}]
    }
    pod = {
        "serviceAccountName": account,
        "securityContext": {"runAsUser": 65532, "runAsGroup": 65532},
        "containers": [
            {
                "name": "provisioner",
                "image": LOCAL_PATH_IMAGE,
                "imagePullPolicy": "Never",
                "args": [
                    "start",
                    "--config=/etc/config/config.json",
                    f"--provisioner-name={PROVISIONER}",
                    f"--service-account-name={account}",
                    f"--helper-image={BASE_IMAGE}",
                ],
                "env": [
                    {
                        "name": "POD_NAMESPACE",
                        "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}},
                    }
                ],
                "resources": {
                    "requests": {"cpu": "10m", "memory": "32Mi"},
                    "limits": {"memory": "128Mi"},
                },
                "securityContext": RESTRICTED_CONTAINER,
                "volumeMounts": [{"name": "config", "mountPath": "/etc/config", "readOnly": True}],
            }
        ],
        "volumes": [{"name": "config", "configMap": {"name": "local-path-config"}}],
    }
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": _meta(account, STORAGE_NAMESPACE, app),
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["pods"],
                "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"],
            }
        ],
    }
    role_binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(account, STORAGE_NAMESPACE, app),
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": STORAGE_NAMESPACE}],
    }
    return [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": _meta(STORAGE_NAMESPACE, None, app)},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": _meta(account, STORAGE_NAMESPACE, app),
        },
        role,
        role_binding,
        *_cluster_role("devstack:local-path-provisioner", app, rules, account, STORAGE_NAMESPACE),
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": _meta("local-path-config", STORAGE_NAMESPACE, app),
            "data": {
                "config.json": json.dumps(config),
                "setup": SETUP_SCRIPT,
                "teardown": TEARDOWN_SCRIPT,
                "helperPod.yaml": json.dumps(helper_pod),
            },
        },
        _deployment(app, STORAGE_NAMESPACE, app, pod),
        {
            "apiVersion": "storage.k8s.io/v1",
            "kind": "StorageClass",
            "metadata": {
                **_meta(STORAGE_CLASS, None, app),
                "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
            },
            "provisioner": PROVISIONER,
            "volumeBindingMode": "WaitForFirstConsumer",
            "reclaimPolicy": "Delete",
        },
    ]


def install(kubectl: Kubectl, volumes_dir: Path) -> None:
    """Apply both add-ons and wait until their Deployments are available."""
    volumes_dir.mkdir(parents=True, exist_ok=True)
    items = [*coredns(), *local_path(volumes_dir)]
    kubectl(
        "apply",
        "--server-side",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": items}),
    )
    for namespace, name in (
        (DNS_NAMESPACE, "coredns"),
        (STORAGE_NAMESPACE, "local-path-provisioner"),
    ):
        kubectl(
            "rollout",
            "status",
            f"deployment/{name}",
            f"--namespace={namespace}",
            f"--timeout={READY_TIMEOUT}",
            timeout=200,
        )
