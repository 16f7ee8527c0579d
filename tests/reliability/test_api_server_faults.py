"""The Kubernetes API server failing under the operator: restarted (same etcd and
certificates) in the middle of reconciles, and many writers of the receiver's aggregated Secret
at once (two operators for two namespaces sharing one receiver). Nothing is lost: every webhook
ends Ready with one endpoint, and the aggregated Secret holds exactly the live webhooks."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.fixtures_stripe import StripeTarget
from devstack.kube import Cluster, ControlPlane, Kubectl
from devstack.processes import ManagedProcess
from tests.operator.conftest import RECEIVER_SECRET, Scene
from tests.operator.operator_process import (
    OperatorProcess,
    api_key_secret,
    apply_crd,
    poll,
    random_cluster_id,
    secret_data,
    try_get_json,
    webhook_manifest,
)
from tests.reliability.convergence import check_deliveries, settle
from tests.reliability.ledger import TIMEOUT, Ledger, trials
from tests.reliability.sink import Sink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT)]

WRITERS_PER_NAMESPACE = 6


def manifests(namespace: str, names: list[str], **spec: Any) -> str:
    items = [json.loads(webhook_manifest(namespace, name, **spec)) for name in names]
    return json.dumps({"apiVersion": "v1", "kind": "List", "items": items})


def entries(kubectl: Kubectl, namespace: str) -> set[str]:
    secret = try_get_json(kubectl, "secret", RECEIVER_SECRET, "-n", namespace)
    return set(secret_data(secret or {}))


def await_entries(
    kubectl: Kubectl, namespace: str, wanted: set[str], *, exact: bool = False
) -> set[str]:
    """Poll the receiver Secret's keys until they include (or, `exact`, equal) `wanted`;
    return the last keys seen."""
    deadline = time.monotonic() + 90
    while True:
        found = entries(kubectl, namespace)
        if (found == wanted if exact else wanted <= found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def release(kubectl: Kubectl, namespace: str) -> None:
    """Drop finalizers (no operator runs any more) and delete the namespace."""
    names = kubectl("get", "stripewebhooks", "-n", namespace, "-o", "name", check=False)
    for resource in names.stdout.split():
        kubectl(
            "patch", resource, "-n", namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}', check=False,
        )  # fmt: skip
    kubectl("delete", "namespace", namespace, "--wait=false", "--ignore-not-found")


def test_two_operators_writing_one_receiver_secret_lose_no_entry(
    scene: Scene,
    kube_cluster: Cluster,
    stripe_emulator: StripeTarget,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    row = ledger.row("Concurrent writers of the aggregated receiver Secret (2 operators)")
    other = f"{scene.namespace[:55]}-b"
    scene.kubectl("create", "namespace", other)
    second: OperatorProcess | None = None
    try:
        scene.kubectl("apply", "-f", "-", input=api_key_secret(other, scene.api_key))
        scene.start_operator()
        second = OperatorProcess(
            kube_cluster.kubeconfig,
            stripe_emulator.base_url,
            other,
            tmp_path,
            scene.cluster_id,
            extra_args=(f"--receiver-namespace={scene.namespace}",),
        ).start()
        problems: list[str] = []
        alive: set[str] = set()  # entries of earlier trials' webhooks, still there
        for trial in range(trials(1, 4)):
            names = [f"t{trial}-w{i}" for i in range(WRITERS_PER_NAMESPACE)]
            # A fresh account per trial: Stripe caps one at 16 endpoints.
            key_ref = {"name": f"stripe-api-key-t{trial}", "key": "api-key"}
            for namespace in (scene.namespace, other):
                key = api_key_secret(namespace, stripe_emulator.new_api_key(), key_ref["name"])
                scene.kubectl("apply", "-f", "-", input=key)
            creators = [
                threading.Thread(
                    target=scene.apply,
                    args=(manifests(namespace, names, apiKeySecretRef=key_ref),),
                    daemon=True,
                )
                for namespace in (scene.namespace, other)
            ]
            for thread in creators:
                thread.start()
            for thread in creators:
                thread.join(60)
            wanted = alive | {f"{ns}.{n}.json" for ns in (scene.namespace, other) for n in names}
            missing = wanted - await_entries(scene.kubectl, scene.namespace, wanted)
            # Then half of them deleted at once in both namespaces.
            gone = names[: len(names) // 2]
            for namespace in (scene.namespace, other):
                scene.kubectl("delete", "swh", *gone, "-n", namespace, "--wait=false")
            kept = alive | {
                f"{ns}.{n}.json" for ns in (scene.namespace, other) for n in names[len(gone) :]
            }
            alive = kept
            found = await_entries(scene.kubectl, scene.namespace, kept, exact=True)
            problems += [f"trial {trial}: never written {key}" for key in sorted(missing)]
            row.add(
                trials=1,
                events_sent=2 * len(names) + 2 * len(gone),
                lost=len(missing | (kept - found)),
                applied_twice=len(found - kept),
            )
            problems += [f"trial {trial}: missing {key}" for key in sorted(kept - found)]
            problems += [f"trial {trial}: left over {key}" for key in sorted(found - kept)]
        assert not problems, problems
    finally:
        if second is not None:
            second.stop()
        release(scene.kubectl, other)


@pytest.fixture
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    """A control plane of this test's own: its API server is killed and restarted."""
    plane = ControlPlane(tmp_path_factory.mktemp("restarted-kube")).start()
    try:
        yield plane
    finally:
        plane.stop()


def apiserver(plane: ControlPlane) -> ManagedProcess:
    # ControlPlane has no restart of its own; its process list is the one handle there is.
    (process,) = [p for p in plane._processes if p.name == "kube-apiserver"]
    return process


def test_api_server_restarted_mid_reconcile_loses_nothing(
    control_plane: ControlPlane,
    stripe_emulator: StripeTarget,
    sink: Sink,
    tmp_path: Path,
    ledger: Ledger,
) -> None:
    row = ledger.row("API server killed and restarted mid-reconcile")
    kubectl = Kubectl(control_plane.kubeconfig, tmp_path / "kubectl-cache")
    apply_crd(kubectl)
    namespace = "restarts"
    kubectl("create", "namespace", namespace)
    api_key = stripe_emulator.new_api_key()
    kubectl("apply", "-f", "-", input=api_key_secret(namespace, api_key))
    cluster_id = random_cluster_id()
    operator = OperatorProcess(
        control_plane.kubeconfig, stripe_emulator.base_url, namespace, tmp_path, cluster_id
    ).start()
    scene = Scene(
        namespace, api_key, stripe_emulator, kubectl, lambda *a, **k: operator, cluster_id
    )
    subscription = stripe_emulator.create_subscription(api_key)
    rng = random.Random()
    wanted: dict[str, str] = {}
    problems: list[str] = []
    try:
        for trial in range(trials(1, 4)):
            batch = {f"t{trial}-w{i}": f"{sink.url}/{namespace}/t{trial}-w{i}" for i in range(3)}
            wanted.update(batch)
            for name, url in batch.items():
                scene.apply(webhook_manifest(namespace, name, url=url))
            time.sleep(rng.uniform(0.0, 1.5))
            server = apiserver(control_plane)
            server.kill()
            row.add(crashes=1)
            time.sleep(1.0)  # the operator's watches and calls fail meanwhile
            server.start()
            poll(
                "API server ready",
                lambda: kubectl("get", "--raw", "/readyz", check=False).returncode == 0,
                60,
            )
            # Created after the restart: only a watch that came back sees these.
            late = f"t{trial}-late"
            wanted[late] = f"{sink.url}/{namespace}/{late}"
            scene.apply(webhook_manifest(namespace, late, url=wanted[late]))
            outcome = settle(scene, wanted, set())
            lost = outcome.lost or check_deliveries(scene, sink, wanted, subscription.id)
            row.add(
                trials=1,
                events_sent=len(batch) + 1,
                lost=len(lost),
                applied_twice=len(outcome.extra),
            )
            problems += [f"trial {trial}: {p}" for p in lost + outcome.extra]
        assert operator.process is not None
        operator.process.check_alive()
    finally:
        operator.stop()
        release(kubectl, namespace)
    assert not problems, problems
