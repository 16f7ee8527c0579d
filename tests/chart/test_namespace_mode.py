"""Namespace mode (`watchNamespaces`), as rendered: the operator is told its namespaces, every
Secret grant is a Role's (in those namespaces and the release's own), no ClusterRole names
Secrets, and peering runs through a KopfPeering in each namespace. Cluster-wide mode keeps its
ClusterRole. The audit-log test (test_operator_rbac.py) checks both modes against the API
server."""

from __future__ import annotations

from tests.chart.grants import granted
from tests.chart.rendering import NAMESPACE, RELEASE, Manifest, container, find, kinds, render

ACCOUNT = f"{RELEASE}-stripe-webhook-operator-operator"
WATCHED = ("default", "kube-public")


def _secret_grants(manifests: list[Manifest]) -> set[tuple[str, str | None, frozenset[str]]]:
    return {
        (g.verb, g.namespace, g.names)
        for g in granted(manifests, NAMESPACE, ACCOUNT)
        if g.resource == "secrets"
    }


def test_the_operator_is_told_which_namespaces_to_watch() -> None:
    args = container(find(render("namespaced"), "Deployment", "-operator"), "operator")["args"]
    assert "--namespace=default,kube-public" in args
    cluster_wide = container(find(render(), "Deployment", "-operator"), "operator")["args"]
    assert not any(a.startswith("--namespace=") for a in cluster_wide)


def test_no_cluster_role_grants_secrets_in_namespace_mode() -> None:
    manifests = render("namespaced")
    (cluster_role,) = [m for m in manifests if m["kind"] == "ClusterRole"]
    resources = {r for rule in cluster_role["rules"] for r in rule["resources"]}
    assert resources == {"namespaces"}  # kube-system's uid names the cluster
    full = frozenset()
    named = frozenset({"stripe-webhook-receiver-secrets"})
    watched = {
        (verb, ns, full) for ns in WATCHED for verb in ("get", "list", "watch", "create", "patch")
    }
    receiver_namespace = {
        ("create", NAMESPACE, full),
        ("get", NAMESPACE, named),
        ("patch", NAMESPACE, named),
    }
    assert _secret_grants(manifests) == watched | receiver_namespace
    assert all(ns is not None for _, ns, _ in _secret_grants(manifests))


def test_a_cluster_id_leaves_namespace_mode_without_any_cluster_role() -> None:
    manifests = render("namespaced", ["clusterId=production-eu"])
    assert not {"ClusterRole", "ClusterRoleBinding"} & kinds(manifests)
    assert granted(manifests, NAMESPACE, ACCOUNT)


def test_cluster_wide_mode_grants_every_secret_through_its_cluster_role() -> None:
    # The documented trade-off of the default mode (docs/helm.md): read access to every Secret.
    grants = _secret_grants(render())
    assert {verb for verb, ns, names in grants if ns is None and not names} == {
        "get",
        "list",
        "watch",
        "create",
        "patch",
    }


def test_each_watched_namespace_gets_the_webhook_rules_and_its_peering_object() -> None:
    manifests = render("namespaced")
    roles = {
        m["metadata"]["namespace"]: m
        for m in manifests
        if m["kind"] == "Role" and m["metadata"]["name"].endswith("-watch")
    }
    assert set(roles) == set(WATCHED)
    bindings = [
        m
        for m in manifests
        if m["kind"] == "RoleBinding" and m["metadata"]["name"].endswith("-watch")
    ]
    assert {b["metadata"]["namespace"] for b in bindings} == set(WATCHED)
    for binding in bindings:
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": ACCOUNT, "namespace": NAMESPACE}
        ]
    for role in roles.values():
        resources = {r for rule in role["rules"] for r in rule["resources"]}
        assert {"stripewebhooks", "secrets", "events", "kopfpeerings"} <= resources
    crd = find(manifests, "CustomResourceDefinition", "kopf.dev")
    assert crd["metadata"]["name"] == "kopfpeerings.kopf.dev"
    assert crd["spec"]["scope"] == "Namespaced"
    peerings = [m for m in manifests if m["kind"] == "KopfPeering"]
    assert {p["metadata"]["namespace"] for p in peerings} == set(WATCHED)
    assert "ClusterKopfPeering" not in kinds(manifests)
