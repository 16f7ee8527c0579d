"""The chart installed with `helm install` into the cluster under test, once per module."""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import yaml

from devstack.cluster.kubectl import Cluster, Kubectl
from tests.chart.cluster import CRD, Release, adopt
from tests.chart.rendering import CHART_DIR, RELEASE, helm, values_args

# Everything at once: two operator pods with kopf peering, three receiver pods on PostgreSQL.
VALUES = "ha"
# Stripe delivers nowhere in these tests; a loopback URL keeps every address local.
PUBLIC_BASE_URL = "http://127.0.0.1:9"


@contextlib.contextmanager
def installed(
    kube_cluster: Cluster, kubectl: Kubectl, stripe_emulator: Any, sets: Sequence[str] = ()
) -> Iterator[Release]:
    """`helm install` the chart (the HA values and `sets`) into a new namespace; uninstall it
    and delete the namespace afterwards."""
    namespace = f"chart-{secrets.token_hex(3)}"
    kubectl("create", "namespace", namespace)
    sets = [
        f"stripe.apiBase={stripe_emulator.base_url}",
        f"publicBaseUrl={PUBLIC_BASE_URL}",
        *sets,
    ]
    kubeconfig = kube_cluster.kubeconfig
    install = ["install", RELEASE, str(CHART_DIR), "--namespace", namespace, "--timeout", "2m"]
    manifest = helm(
        "template", RELEASE, str(CHART_DIR), "--namespace", namespace, *values_args(VALUES, sets)
    ).stdout
    manifests = [doc for doc in yaml.safe_load_all(manifest) if doc]
    adopt(kubectl, [m for m in manifests if m["kind"] == CRD], RELEASE, namespace)
    helm(*install, *values_args(VALUES, sets), kubeconfig=kubeconfig)
    try:
        yield Release(namespace, manifests, kubeconfig)
    finally:
        helm("uninstall", RELEASE, "--namespace", namespace, check=False, kubeconfig=kubeconfig)
        kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


@pytest.fixture(scope="module")
def release(kube_cluster: Cluster, kubectl: Kubectl, stripe_emulator: Any) -> Iterator[Release]:
    with installed(kube_cluster, kubectl, stripe_emulator) as installation:
        yield installation
