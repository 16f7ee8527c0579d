"""kopf's peering resources (KopfPeering per namespace, ClusterKopfPeering cluster-wide), which
replicas with `--peering NAME` use to elect the one that works. The chart must install them."""

from __future__ import annotations

import json
from typing import Any

from devstack.cluster.kubectl import Kubectl


def peering_crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.kopf.dev"},
        "spec": {
            "group": "kopf.dev",
            "scope": scope,
            "names": {"kind": kind, "plural": plural, "singular": plural[:-1]},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "x-kubernetes-preserve-unknown-fields": True,
                        }
                    },
                }
            ],
        },
    }


def install_peering(kubectl: Kubectl, namespace: str, name: str) -> None:
    """Install both peering CRDs and the KopfPeering `name` in `namespace`."""
    for crd in (
        peering_crd("KopfPeering", "kopfpeerings", "Namespaced"),
        peering_crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
    ):
        kubectl("apply", "-f", "-", input=json.dumps(crd))
    kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=30s")
    peering = {
        "apiVersion": "kopf.dev/v1",
        "kind": "KopfPeering",
        "metadata": {"name": name, "namespace": namespace},
    }
    kubectl("apply", "-f", "-", input=json.dumps(peering))
