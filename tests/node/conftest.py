"""The chart installed on the node (once per session), a namespace per test for an app's
webhooks, and the reliability ledger the node's fault tests count into (the reliability
suite's own: its rows go to docs/reliability.md)."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator

import pytest

from devstack.node.cluster import NodeCluster
from devstack.node.fixtures import NodeStripe
from devstack.release import ChartRelease
from tests.node.journey import API_KEY_SECRET, Journey, receiver_url
from tests.reliability.conftest import ledger

__all__ = ["journey", "ledger", "release"]


@pytest.fixture(scope="module")
def release(node_release: ChartRelease) -> ChartRelease:
    return node_release


@pytest.fixture
def journey(
    node_cluster: NodeCluster, node_stripe: NodeStripe, release: ChartRelease
) -> Iterator[Journey]:
    """An app's namespace with its Stripe API key Secret: a fresh emulator account per test,
    so that each test's books hold its own events only."""
    kubectl = node_cluster.kubectl()
    api_key = node_stripe.new_api_key()
    with kubectl.temporary_namespace(f"app-{secrets.token_hex(3)}") as namespace:
        secret = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": API_KEY_SECRET},
            "stringData": {"api-key": api_key},
        }
        kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(secret))
        yield Journey(
            node_cluster,
            node_stripe,
            release,
            namespace,
            api_key,
            receiver_url(node_cluster, release),
        )
