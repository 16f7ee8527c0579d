"""The operator, run with the chart's own command line and the token of the chart's
ServiceAccount, completes a create-update-rotate-delete journey against the real API server and
the Stripe emulator: a rule missing from the chart's RBAC fails this test.

The local control plane runs no pods, so the operator runs as a process here, with the
arguments and environment of the installed Deployment and a TokenRequest token of its
ServiceAccount. Two flags are left out: `--receiver-url` and `--receiver-service` name the
receiver Service's in-cluster DNS name and EndpointSlice addresses, which cannot point at a
loopback process (the API server refuses loopback addresses in EndpointSlices); the
EndpointSlice permission is checked by `kubectl auth can-i` in test_install.py instead.

The journey runs once per RBAC mode (a module fixture per mode): cluster-wide, and namespace
mode with `watchNamespaces` set to the journey's namespace, created before the install. A second
test reads the API server's audit log and checks that every grant of the chart's roles was used
in it (a ClusterRole's outside the release's namespace) and that nothing was refused: a grant
the operator never exercises is a grant too many. In namespace mode no ClusterRole may grant
Secrets at all."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from devstack.cluster.kubectl import Cluster, Kubectl
from devstack.processes import REPO_ROOT, ManagedProcess, free_port
from devstack.project.objects import (
    get_json,
)
from tests.chart.cluster import Release
from tests.chart.conftest import PUBLIC_BASE_URL, installed
from tests.chart.grants import granted
from tests.chart.rbac_journey import check_grants, create_update_rotate_delete, until
from tests.chart.rendering import RELEASE, Manifest

pytestmark = pytest.mark.integration

ACCOUNT = f"{RELEASE}-stripe-webhook-operator-operator"
POD_NAME = f"{RELEASE}-stripe-webhook-operator-operator-test-0"
LEFT_OUT = ("--receiver-url=", "--receiver-service=", "--metrics-port=")
PEERING = "stripe-webhook-operator"


def _operator_container(release: Release) -> Manifest:
    deployment = next(
        m
        for m in release.manifests
        if m["kind"] == "Deployment" and m["metadata"]["name"].endswith("-operator")
    )
    container: Manifest = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def _environment(container: Manifest, kubeconfig: Path, home: Path) -> dict[str, str]:
    env = {"PATH": "/usr/bin:/bin", "KUBECONFIG": str(kubeconfig), "HOME": str(home)}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        else:
            assert item["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}, item
            env[item["name"]] = POD_NAME
    return env


@pytest.fixture(scope="module")
def operator(
    release: Release, kubectl: Kubectl, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ManagedProcess]:
    """The operator as the chart runs it, authenticated as the chart's ServiceAccount."""
    tmp_path = tmp_path_factory.mktemp("operator-rbac")
    token_config = tmp_path / "operator.kubeconfig"
    kubectl.as_service_account(release.namespace, ACCOUNT, token_config)
    container = _operator_container(release)
    (command,) = container["command"]
    args = [a for a in container["args"] if not a.startswith(LEFT_OUT)]
    port = free_port()
    argv = [
        str(REPO_ROOT / ".venv" / "bin" / command),
        *args,
        "--metrics-host=127.0.0.1",
        f"--metrics-port={port}",
        "--drift-jitter=200ms",
    ]
    env = _environment(container, token_config, tmp_path)
    process = ManagedProcess("operator", argv, tmp_path / "operator.log", env=env).start()
    try:
        yield process
    finally:
        process.stop()


CLUSTER_WIDE, NAMESPACED = "cluster-wide", "namespaced"


@pytest.fixture(scope="module", params=[CLUSTER_WIDE, NAMESPACED])
def mode(request: pytest.FixtureRequest) -> str:
    """The chart's RBAC mode: cluster-wide, or namespace mode (`watchNamespaces`)."""
    return str(request.param)


@pytest.fixture(scope="module")
def journey_namespace(kubectl: Kubectl, mode: str) -> Iterator[str]:
    """A namespace for the journey's StripeWebhook, deleted (without waiting) afterwards."""
    name = f"t-operator-rbac-{secrets.token_hex(3)}"
    with kubectl.temporary_namespace(name):
        yield name


@pytest.fixture(scope="module")
def release(
    kube_cluster: Cluster, kubectl: Kubectl, stripe_emulator: Any, mode: str, journey_namespace: str
) -> Iterator[Release]:
    """The chart installed in `mode`; in namespace mode watching the journey's namespace."""
    sets = [f"watchNamespaces[0]={journey_namespace}"] if mode == NAMESPACED else []
    with installed(kube_cluster, kubectl, stripe_emulator, sets) as installation:
        yield installation


def _peers(kubectl: Kubectl, mode: str, namespace: str) -> dict[str, Any]:
    if mode == NAMESPACED:
        peering = get_json(kubectl, f"kopfpeerings.kopf.dev/{PEERING}", "-n", namespace)
    else:
        peering = get_json(kubectl, f"clusterkopfpeerings.kopf.dev/{PEERING}")
    return dict(peering.get("status") or {})


@dataclass(frozen=True)
class Journey:
    """A finished journey: the operator's log."""

    log: str


@pytest.fixture(scope="module")
def journey(
    release: Release,
    kubectl: Kubectl,
    journey_namespace: str,
    stripe_emulator: Any,
    operator: ManagedProcess,
    mode: str,
) -> Journey:
    """Join the peering, then create, update, rotate and delete a StripeWebhook, asserting each
    step."""
    # Peering: the replica announces itself in the chart's ClusterKopfPeering (in namespace mode,
    # the KopfPeering of the journey's namespace).
    watch = (operator.check_alive, lambda: operator.log_tail(40))
    until(
        watch,
        "joining the peering",
        lambda: POD_NAME in _peers(kubectl, mode, journey_namespace),
        timeout=60,
    )
    create_update_rotate_delete(
        kubectl, journey_namespace, stripe_emulator, release.namespace, PUBLIC_BASE_URL, watch
    )
    operator.check_alive()
    return Journey(operator.log_path.read_text(errors="replace"))


# A regression test too: the operator once ignored ServiceAccount tokens (it read
# `api_key['authorization']`, where kubernetes >= 35 keeps `BearerToken`) and ran anonymously.
def test_operator_as_the_charts_service_account_completes_a_journey(journey: Journey) -> None:
    for refusal in ("Forbidden", "forbidden", "Not enough permissions", " 403"):
        assert refusal not in journey.log, f"the operator was refused something:\n{journey.log}"


# Grants the journey cannot use, each with why and the test that covers it instead.
NOT_REQUESTED = {
    # Only with `--receiver-service`, which the journey leaves out (see the module docstring):
    # tests/operator/test_replica_handshake.py runs the operator with it (in a network
    # namespace of its own), and test_install.py checks this grant with `kubectl auth can-i`.
    ("list", "discovery.k8s.io", "endpointslices"),
    # The nudge of the receiver's Pods after each write of their Secret: only with
    # `--receiver-service`, and only where receiver Pods run. tests/node/test_chart.py checks,
    # on the node, that the operator's Pod (as this ServiceAccount) annotated the receiver's.
    ("patch", "", "pods"),
    # Never requested: the OwnerReferencesPermissionEnforcement admission plugin, which the
    # local control plane runs, checks it when the operator creates a per-webhook Secret owned
    # (blockOwnerDeletion) by its StripeWebhook; without it the journey's create is refused,
    # which the test below catches in the audit log.
    ("update", "stripe.operator.dev", "stripewebhooks/finalizers"),
}


def test_every_grant_is_used_by_the_journey_and_nothing_is_refused(
    journey: Journey, release: Release, kube_cluster: Cluster
) -> None:
    audit_log = getattr(kube_cluster, "audit_log", None)
    if audit_log is None:
        pytest.skip("the API server's audit log is out of reach on an E2E_KUBECONFIG cluster")
    check_grants(release.manifests, release.namespace, ACCOUNT, audit_log, NOT_REQUESTED)


def test_secret_grants_are_what_the_mode_promises(
    journey: Journey, release: Release, mode: str, journey_namespace: str
) -> None:
    grants = granted(release.manifests, release.namespace, ACCOUNT)
    secrets_by = {g.namespace for g in grants if g.resource == "secrets"}
    if mode == CLUSTER_WIDE:
        # The documented trade-off of the default mode: every Secret of the cluster.
        assert None in secrets_by
        return
    assert secrets_by == {journey_namespace, release.namespace}
    cluster_wide = sorted(str(g) for g in grants if g.namespace is None)
    assert cluster_wide == ["get namespaces.core named kube-system (ClusterRole)"]
