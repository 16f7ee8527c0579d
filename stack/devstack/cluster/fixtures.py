"""Pytest fixtures for Kubernetes: the local control plane (or the cluster named by
E2E_KUBECONFIG), a fresh namespace per test, and a kubectl runner bound to the cluster."""

from __future__ import annotations

import os
import re
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.cluster.control_plane import ControlPlane
from devstack.cluster.kubectl import Cluster, ExternalCluster, Kubectl

# A namespace name is a DNS label: at most 63 characters.
NAMESPACE_PREFIX_LENGTH = 40


@pytest.fixture(scope="session")
def kube_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The cluster under test: E2E_KUBECONFIG's if set, else a local control plane."""
    external = os.environ.get("E2E_KUBECONFIG")
    if external:
        yield ExternalCluster.from_kubeconfig(Path(external))
        return
    plane = ControlPlane(tmp_path_factory.mktemp("kube")).start()
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def kubectl(kube_cluster: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Kubectl:
    """`kubectl("get", "ns", input=None, check=True)` against the cluster under test."""
    return Kubectl(kube_cluster.kubeconfig, tmp_path_factory.mktemp("kubectl-cache"))


@pytest.fixture
def kube_namespace(request: pytest.FixtureRequest, kubectl: Kubectl) -> Iterator[str]:
    """A namespace created for this test alone, deleted (without waiting) afterwards."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    name = f"t-{stem[:NAMESPACE_PREFIX_LENGTH].rstrip('-')}-{secrets.token_hex(3)}"
    with kubectl.temporary_namespace(name):
        yield name
