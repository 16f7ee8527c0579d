"""`helm install` into the local control plane: every object is created; the receiver's
ServiceAccount may do nothing; `helm uninstall` keeps the CRD.

The local control plane has no kubelet and no scheduler, so the pods never run: these tests
check what the API server holds, and the operator's permissions are exercised by running the
operator process outside the cluster with the chart's ServiceAccount token."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from devstack.cluster.kubectl import Kubectl
from tests.chart.cluster import CLUSTER_SCOPED, Release
from tests.chart.rendering import RELEASE, Manifest, helm

pytestmark = pytest.mark.integration


def _exists(kubectl: Kubectl, manifest: Manifest, namespace: str) -> bool:
    kind = manifest["kind"]
    api_version = manifest["apiVersion"]
    group = api_version.split("/")[0] if "/" in api_version else ""
    resource = f"{kind}.{group}" if group else kind
    args = ["get", resource, manifest["metadata"]["name"], "--ignore-not-found", "-o", "name"]
    if kind not in CLUSTER_SCOPED:
        args += ["--namespace", namespace]
    return bool(kubectl(*args).stdout.strip())


def test_every_object_of_the_release_exists(release: Release, kubectl: Kubectl) -> None:
    expected = [m for m in release.manifests if m["kind"] != "Pod"]  # the `helm test` hook
    assert len(expected) > 15
    missing = [
        f"{m['kind']}/{m['metadata']['name']}"
        for m in expected
        if not _exists(kubectl, m, release.namespace)
    ]
    assert missing == []


def test_helm_reports_the_release_deployed(release: Release) -> None:
    status = json.loads(
        helm(
            "status",
            RELEASE,
            "--namespace",
            release.namespace,
            "-o",
            "json",
            kubeconfig=release.kubeconfig,
        ).stdout
    )
    assert status["info"]["status"] == "deployed"


SELF_REVIEWS = {
    "selfsubjectreviews.authentication.k8s.io",
    "selfsubjectaccessreviews.authorization.k8s.io",
    "selfsubjectrulesreviews.authorization.k8s.io",
}
RECEIVER_ATTEMPTS = [
    ("get", "secrets"),
    ("list", "secrets"),
    ("watch", "secrets"),
    ("get", "stripewebhooks.stripe.operator.dev"),
    ("list", "pods"),
    ("create", "events"),
    ("list", "endpointslices.discovery.k8s.io"),
    ("list", "namespaces"),
    ("get", "configmaps"),
]


def test_receiver_service_account_is_refused_everything(
    release: Release, kubectl: Kubectl, tmp_path: Path
) -> None:
    account = f"{RELEASE}-stripe-webhook-operator-receiver"
    receiver = kubectl.as_service_account(release.namespace, account, tmp_path / "kubeconfig")
    for verb, resource in RECEIVER_ATTEMPTS:
        for scope in (["--namespace", release.namespace], ["--all-namespaces"]):
            answer = receiver("auth", "can-i", verb, resource, *scope, check=False)
            assert answer.stdout.strip() == "no", (verb, resource, scope)
    # And for real, not only as the authorizer answers it: the API server refuses the read.
    attempt = receiver("get", "secrets", "--namespace", release.namespace, check=False)
    assert attempt.returncode != 0
    assert "Forbidden" in attempt.stderr
    # Its whole list of rules is what every authenticated identity gets: reviews of itself
    # (create) and reads of discovery, health and version URLs (get), nothing else.
    rules = receiver("auth", "can-i", "--list", "--namespace", release.namespace).stdout
    for line in rules.splitlines()[1:]:
        columns = line.split()
        if columns[0].startswith("[/"):
            assert columns[-1] == "[get]", line
        else:
            assert columns[0] in SELF_REVIEWS, line
            assert columns[-1] == "[create]", line


def test_operator_service_account_may_do_what_the_chart_grants(
    release: Release, kubectl: Kubectl, tmp_path: Path
) -> None:
    account = f"{RELEASE}-stripe-webhook-operator-operator"
    operator = kubectl.as_service_account(release.namespace, account, tmp_path / "kubeconfig")

    def can(*args: str) -> bool:
        return operator("auth", "can-i", *args, check=False).stdout.strip() == "yes"

    assert can("watch", "stripewebhooks.stripe.operator.dev", "--all-namespaces")
    assert can("patch", "stripewebhooks.stripe.operator.dev", "--subresource=status", "-A")
    assert can("create", "secrets", "--namespace", "default")
    assert can("list", "endpointslices.discovery.k8s.io", "--namespace", release.namespace)
    assert not can("list", "endpointslices.discovery.k8s.io", "--namespace", "default")
    assert can("patch", "clusterkopfpeerings.kopf.dev/stripe-webhook-operator")
    assert not can("patch", "clusterkopfpeerings.kopf.dev/another")
    assert not can("delete", "secrets", "--namespace", "default")
    assert not can("create", "pods", "--namespace", release.namespace)


def test_uninstall_keeps_the_crd(release: Release, kubectl: Kubectl) -> None:
    helm("uninstall", RELEASE, "--namespace", release.namespace, kubeconfig=release.kubeconfig)
    kept = kubectl("get", "crd", "stripewebhooks.stripe.operator.dev", "-o", "json").stdout
    assert json.loads(kept)["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    deployments = kubectl("get", "deployments", "--namespace", release.namespace, "-o", "name")
    assert deployments.stdout.strip() == ""
