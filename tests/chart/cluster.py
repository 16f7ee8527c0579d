"""Putting rendered chart objects in front of the real API server of the cluster under test."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import yaml

from devstack.cluster.kubectl import Kubectl
from tests.chart.rendering import Manifest

SERVICE_MONITOR_CRD = Path(__file__).parent / "servicemonitor-crd.yaml"
PROMETHEUS_RULE_CRD = Path(__file__).parent / "prometheusrule-crd.yaml"
CRD = "CustomResourceDefinition"
CLUSTER_SCOPED = {CRD, "ClusterRole", "ClusterRoleBinding", "ClusterKopfPeering"}


def as_yaml(manifests: Iterable[Manifest]) -> str:
    return yaml.safe_dump_all(list(manifests), sort_keys=False)


def apply_crds(kubectl: Kubectl, crds: list[Manifest]) -> None:
    """Create or update CRDs for real (strict field validation) and wait until they serve."""
    if not crds:
        return
    kubectl(
        "apply",
        "--server-side",
        "--field-manager=tests-chart",
        "--force-conflicts",
        "--validate=strict",
        "-f",
        "-",
        input=as_yaml(crds),
    )
    names = [f"crd/{crd['metadata']['name']}" for crd in crds]
    kubectl("wait", "--for=condition=Established", "--timeout=60s", *names)


def dry_run(kubectl: Kubectl, manifests: list[Manifest]) -> str:
    """Send objects to the API server with server-side dry run and strict field validation;
    return kubectl's report, raising with the server's complaint if any object is refused."""
    return kubectl(
        "apply",
        "--dry-run=server",
        "--validate=strict",
        "-f",
        "-",
        input=as_yaml(manifests),
    ).stdout


def adopt(kubectl: Kubectl, crds: list[Manifest], release: str, namespace: str) -> None:
    """Mark existing CRDs as belonging to `release`, as a user taking over CRDs that were
    installed with `kubectl apply` does, so that `helm install` may manage them."""
    existing = kubectl(
        "get", "crd", "-o", "json", "--ignore-not-found", *[c["metadata"]["name"] for c in crds]
    ).stdout
    if not existing.strip():
        return
    items = json.loads(existing).get("items", [json.loads(existing)])
    for item in items:
        name = item["metadata"]["name"]
        kubectl("label", "--overwrite", f"crd/{name}", "app.kubernetes.io/managed-by=Helm")
        kubectl(
            "annotate",
            "--overwrite",
            f"crd/{name}",
            f"meta.helm.sh/release-name={release}",
            f"meta.helm.sh/release-namespace={namespace}",
        )


@dataclass
class Release:
    """An installed release: its namespace, the objects Helm created, an admin kubeconfig."""

    namespace: str
    manifests: list[Manifest]
    kubeconfig: Path
