"""The chart's RBAC, exercised by the operator running as the chart's Pod on the real node:
its ServiceAccount's token, mounted by the kubelet, carries a create-update-rotate-delete
journey, with the receiver's Pods behind their Service (so the readiness handshake reads the
EndpointSlices and the nudge patches the Pods). The API server's audit log then shows every
grant of the chart used and nothing refused, in both RBAC modes: cluster-wide, and namespace
mode (`watchNamespaces`), where no ClusterRole may grant Secrets. (tests/chart runs the same
journey with the HA values on the kubelet-less control plane, the operator as a process.)"""

from __future__ import annotations

import datetime
import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from devstack.node.cluster import NodeCluster
from devstack.node.fixtures import NodeStripe
from devstack.release import ChartRelease
from tests.chart.grants import granted
from tests.chart.rbac_journey import check_grants, create_update_rotate_delete

pytestmark = pytest.mark.integration

CLUSTER_WIDE, NAMESPACED = "cluster-wide", "namespaced"
# Never requested: the OwnerReferencesPermissionEnforcement admission plugin, which the node's
# control plane runs, checks it when the operator creates a per-webhook Secret owned
# (blockOwnerDeletion) by its StripeWebhook; without it the journey's create is refused,
# which the audit check catches.
NOT_REQUESTED = {("update", "stripe.operator.dev", "stripewebhooks/finalizers")}


@dataclass(frozen=True)
class Mode:
    name: str
    namespace: str
    since: str


@pytest.fixture(scope="module", params=[CLUSTER_WIDE, NAMESPACED])
def mode(
    request: pytest.FixtureRequest, node_cluster: NodeCluster, node_release: ChartRelease
) -> Iterator[Mode]:
    """The release in this mode (namespace mode watching the journey's namespace), its
    operator restarted: what it asks from then on is this mode's."""
    name = str(request.param)
    kubectl = node_cluster.kubectl()
    with kubectl.temporary_namespace(f"rbac-{secrets.token_hex(3)}") as namespace:
        # The API server's own clock stamps the audit events; the node shares this machine's.
        since = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        sets = [f"watchNamespaces[0]={namespace}"] if name == NAMESPACED else []
        # The receiver's Secret is created once: gone, the journey's first write creates it,
        # so the grant that allows it is used in each mode.
        kubectl(
            "delete", "secret", "stripe-webhook-receiver-secrets", "-n", node_release.namespace,
            "--ignore-not-found",
        )  # fmt: skip
        with node_release.upgraded(*sets):
            yield Mode(name, namespace, since)


def test_operator_pod_completes_the_journey_with_exactly_the_charts_grants(
    mode: Mode, node_cluster: NodeCluster, node_stripe: NodeStripe, node_release: ChartRelease
) -> None:
    kubectl = node_cluster.kubectl()
    deployment = f"deployment/{node_release.operator_deployment}"

    def alive() -> None:
        ready = kubectl(
            "get", deployment, "-n", node_release.namespace,
            "-o", "jsonpath={.status.readyReplicas}",
        ).stdout  # fmt: skip
        assert ready == "1", f"the operator's Pod is not ready ({ready!r})"

    def log() -> str:
        return kubectl("logs", deployment, "-n", node_release.namespace, "--tail=40").stdout

    create_update_rotate_delete(
        kubectl,
        mode.namespace,
        node_stripe,
        node_release.namespace,
        node_release.public_base_url,
        (alive, log),
    )
    assert node_cluster.control_plane is not None
    manifests = node_release.manifests()
    check_grants(
        manifests,
        node_release.namespace,
        node_release.operator_deployment,
        node_cluster.control_plane.audit_log,
        NOT_REQUESTED,
        since=mode.since,
        namespaces=(mode.namespace, node_release.namespace),
    )
    grants = granted(manifests, node_release.namespace, node_release.operator_deployment)
    secrets_by = {g.namespace for g in grants if g.resource == "secrets"}
    if mode.name == CLUSTER_WIDE:
        # The documented trade-off of the default mode: every Secret of the cluster.
        assert None in secrets_by
    else:
        assert secrets_by == {mode.namespace, node_release.namespace}
