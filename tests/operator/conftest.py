"""Fixtures of the operator's integration tests: the CRD installed once, an API key (a fresh
emulator account) in a fresh namespace, and operator replicas stopped by PID afterwards."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stripe

from devstack.kube import Cluster, Kubectl
from tests.operator.operator_process import (
    OperatorProcess,
    api_key_secret,
    apply_crd,
    random_cluster_id,
)


@dataclass
class Scene:
    """A namespace with an API-key Secret for a fresh Stripe account, and how to start
    operators watching it."""

    namespace: str
    api_key: str
    stripe: Any
    kubectl: Kubectl
    start_operator: Callable[..., OperatorProcess]
    cluster_id: str

    def client(self) -> stripe.StripeClient:
        return self.stripe.client(self.api_key)

    def endpoints(self) -> list[Any]:
        return list(self.client().v1.webhook_endpoints.list({"limit": 100}).data)

    def apply(self, manifest: str) -> None:
        self.kubectl("apply", "-f", "-", input=manifest)


@pytest.fixture(scope="session")
def stripewebhook_crd(kubectl: Kubectl) -> None:
    apply_crd(kubectl)


@pytest.fixture
def scene(
    kube_cluster: Cluster,
    kubectl: Kubectl,
    kube_namespace: str,
    stripe_emulator: Any,
    stripewebhook_crd: None,
    tmp_path: Path,
) -> Iterator[Scene]:
    api_key = stripe_emulator.new_api_key()
    kubectl("apply", "-f", "-", input=api_key_secret(kube_namespace, api_key))
    cluster_id = random_cluster_id()
    started: list[OperatorProcess] = []

    def start_operator(*args: str, wait_ready: bool = True) -> OperatorProcess:
        process = OperatorProcess(
            kube_cluster.kubeconfig,
            stripe_emulator.base_url,
            kube_namespace,
            tmp_path,
            cluster_id,
            extra_args=args,
        )
        started.append(process)
        return process.start(wait_ready=wait_ready)

    yield Scene(kube_namespace, api_key, stripe_emulator, kubectl, start_operator, cluster_id)
    for process in started:
        process.stop()
    # Finalizers would hold the namespace forever once no operator runs.
    names = kubectl("get", "stripewebhooks", "-n", kube_namespace, "-o", "name", check=False)
    for resource in names.stdout.split():
        kubectl(
            "patch",
            resource,
            "-n",
            kube_namespace,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )
