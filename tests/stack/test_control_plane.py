"""The local control plane is a real one: the pinned release, CRDs and watches, garbage
collection, namespace deletion, and a clean stop."""

from __future__ import annotations

import json
import os
import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch

from devstack.cluster.control_plane import ControlPlane
from devstack.cluster.kubectl import Cluster, Kubectl
from devstack.processes import REPO_ROOT, wait_until
from stripe_webhook_operator import constants

pytestmark = pytest.mark.integration

CRD_PATH = REPO_ROOT / "crds" / "stripewebhooks.yaml"
KUBERNETES_GO_MOD = REPO_ROOT / "stack" / "go" / "kubernetes" / "go.mod"
# Bounds on what the controllers do in the background; each is far above the usual second.
GARBAGE_COLLECTION_TIMEOUT = 60.0
NAMESPACE_DELETION_TIMEOUT = 60.0
WATCH_TIMEOUT_SECONDS = 30


def test_version_is_the_release_pinned_in_go_mod(kube_cluster: Cluster, kubectl: Kubectl) -> None:
    if not isinstance(kube_cluster, ControlPlane):
        pytest.skip("E2E_KUBECONFIG names a cluster that runs its own release")
    pinned = re.search(r"^require k8s\.io/kubernetes (v\S+)$", KUBERNETES_GO_MOD.read_text(), re.M)
    assert pinned is not None

    served = json.loads(kubectl("get", "--raw", "/version").stdout)

    assert served["gitVersion"] == pinned.group(1)


def test_crd_is_established_and_custom_resource_is_watched(
    kube_cluster: Cluster, kubectl: Kubectl, kube_namespace: str
) -> None:
    kubectl("apply", "--server-side", "--force-conflicts", f"--filename={CRD_PATH}")
    kubectl(
        "wait",
        "--for=condition=Established",
        f"customresourcedefinition/{constants.PLURAL}.{constants.GROUP}",
        "--timeout=30s",
    )
    name = f"watched-{secrets.token_hex(3)}"
    args = (constants.GROUP, constants.VERSION, kube_namespace, constants.PLURAL)

    with config.new_client_from_config(config_file=str(kube_cluster.kubeconfig)) as api_client:
        api = client.CustomObjectsApi(api_client)
        listing: dict[str, Any] = api.list_namespaced_custom_object(*args)
        since = listing["metadata"]["resourceVersion"]
        kubectl("apply", "--filename=-", input=json.dumps(_stripe_webhook(name, kube_namespace)))
        seen = _first_added(api, args, since)

    assert seen["kind"] == constants.KIND
    assert seen["metadata"]["name"] == name
    assert seen["spec"]["apiKeySecretRef"] == {"name": "stripe-api-key", "key": "api-key"}


def _stripe_webhook(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": constants.API_VERSION,
        "kind": constants.KIND,
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"apiKeySecretRef": {"name": "stripe-api-key", "key": "api-key"}},
    }


def _first_added(
    api: client.CustomObjectsApi, args: tuple[str, str, str, str], since: str
) -> dict[str, Any]:
    """The first ADDED event a watch from resourceVersion `since` delivers."""
    stream = watch.Watch().stream(
        api.list_namespaced_custom_object,
        *args,
        resource_version=since,
        timeout_seconds=WATCH_TIMEOUT_SECONDS,
    )
    for event in stream:
        if event["type"] == "ADDED":
            obj: dict[str, Any] = event["object"]
            return obj
    raise AssertionError(f"No ADDED event within {WATCH_TIMEOUT_SECONDS} s")


def test_dependent_is_garbage_collected_after_its_owner_is_deleted(
    kubectl: Kubectl, kube_namespace: str
) -> None:
    ns = f"--namespace={kube_namespace}"
    owner = json.loads(kubectl("create", "configmap", "owner", ns, "-o=json").stdout)
    dependent = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": "dependent",
            "ownerReferences": [
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "name": "owner",
                    "uid": owner["metadata"]["uid"],
                }
            ],
        },
    }
    kubectl("create", ns, "--filename=-", input=json.dumps(dependent))

    kubectl("delete", "configmap", "owner", ns, "--cascade=background")

    wait_until(
        lambda: _absent(kubectl, "configmap/dependent", ns),
        timeout=GARBAGE_COLLECTION_TIMEOUT,
        what="garbage collection of configmap/dependent",
    )


def test_deleted_namespace_is_removed_with_its_contents(kubectl: Kubectl) -> None:
    name = f"t-doomed-{secrets.token_hex(3)}"
    kubectl("create", "namespace", name)
    kubectl("create", "configmap", "content", f"--namespace={name}")

    kubectl("delete", "namespace", name, "--wait=false")

    wait_until(
        lambda: _absent(kubectl, f"namespace/{name}"),
        timeout=NAMESPACE_DELETION_TIMEOUT,
        what=f"removal of namespace {name}",
    )


def _absent(kubectl: Kubectl, *target: str) -> bool:
    return kubectl("get", *target, "--ignore-not-found", "-o=name").stdout.strip() == ""


def test_default_service_account_exists_in_default_namespace(kubectl: Kubectl) -> None:
    found = kubectl("get", "serviceaccount", "default", "--namespace=default", "-o=name")

    assert found.stdout.strip() == "serviceaccount/default"


def test_pod_is_admitted_in_a_namespace_just_created(kubectl: Kubectl, kube_namespace: str) -> None:
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "app", "namespace": kube_namespace},
        "spec": {"containers": [{"name": "app", "image": "registry.invalid/app:1"}]},
    }

    # Server-side dry run: admission runs in full, and no real cluster tries to pull the image.
    admitted = kubectl(
        "create", "--dry-run=server", "--filename=-", "-o=name", input=json.dumps(pod)
    )

    assert admitted.stdout.strip() == "pod/app"


def test_stop_leaves_no_process_behind(tmp_path: Path) -> None:
    plane = ControlPlane(tmp_path / "kube").start()
    try:
        pids = plane.pids()
        assert len(pids) == 3
        assert all(_group_alive(pid) for pid in pids)
    finally:
        plane.stop()

    assert [pid for pid in pids if _group_alive(pid)] == []


def _group_alive(pgid: int) -> bool:
    """Whether any process is left in the process group `pgid` (the launcher's own groups)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True
