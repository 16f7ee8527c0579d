"""Pytest fixtures for the real node: the node's cluster, the Stripe emulator inside it, and
the project's chart installed on it with the locally built image.

One node serves the whole session (its start builds the images that changed and imports them
into containerd), and one release of the chart on it: a release owns the cluster-wide CRD, so a
second release beside it would be refused by Helm, as on any cluster.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.node.cluster import NodeCluster
from devstack.release import ChartRelease
from devstack.stripe_emulator.fixtures import StripeTarget
from devstack.stripe_emulator.launcher import EmulatorProcess

# Short retries: an event refused before its receipt exists comes back within seconds.
RETRY_SCHEDULE = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)


class NodeStripe(StripeTarget):
    """The emulator inside the node: `base_url` from the host, `inside_url` for Pods."""

    def __init__(self, process: EmulatorProcess) -> None:
        super().__init__(process.base_url)
        self.inside_url = process.inside_url
        self.process = process


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeCluster]:
    """The local node's cluster for the session, stopped (with everything in it) at the end."""
    cluster = NodeCluster(Path(tmp_path_factory.mktemp("node"))).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def node_stripe(
    node_cluster: NodeCluster, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeStripe]:
    """The Stripe emulator, running inside the node and delivering to Services by name."""
    process = node_cluster.start_emulator(
        Path(tmp_path_factory.mktemp("node-stripe")), retry_schedule=RETRY_SCHEDULE
    )
    try:
        yield NodeStripe(process)
    finally:
        process.stop()


@pytest.fixture(scope="session")
def node_release(node_cluster: NodeCluster, node_stripe: NodeStripe) -> Iterator[ChartRelease]:
    """The chart, installed with `helm install --wait` in a namespace of its own."""
    release = ChartRelease(
        node_cluster.kubectl(),
        f"swo-{secrets.token_hex(3)}",
        stripe_api_base=node_stripe.inside_url,
    ).install()
    try:
        yield release
    finally:
        release.uninstall()
