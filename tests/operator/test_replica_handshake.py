"""The readiness handshake with several receiver replicas (`--receiver-service`): the operator
asks every ready address of the receiver Service's EndpointSlices and enables a new endpoint
only once each of them lists the new secret's fingerprint.

The API server refuses loopback addresses in EndpointSlices, so this module runs its whole
stack in a private network namespace (devstack.node.netns) whose only interface is its own `lo`:
a control plane, the Stripe emulator and the operator on that namespace's 127.0.0.1, and two
real receivers, each on an extra address of that `lo` (10.251.0.2, 10.251.0.3) and each fed
by its own Secret projector (a FedReceiver). The test publishes the receiver Service's
EndpointSlice as the endpoint-slice controller would for two Pods, and holds a replica back from
the new secret by stopping its projector (a kubelet that has not synced the volume yet).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from devstack.cluster.control_plane import ControlPlane
from devstack.cluster.kubectl import Kubectl
from devstack.node.netns import NetworkNamespace
from devstack.processes import poll
from devstack.project.objects import (
    api_key_secret,
    apply_crd,
    condition,
    get_json,
    random_cluster_id,
    rotation_step,
    secret_data,
    webhook_manifest,
)
from devstack.project.operator_process import OperatorProcess
from devstack.project.receiver_process import FedReceiver
from devstack.project.scene import RECEIVER_SECRET
from devstack.stripe_emulator.fixtures import StripeTarget
from devstack.stripe_emulator.launcher import EmulatorProcess
from stripe_webhook_operator import constants as c

pytestmark = pytest.mark.integration

NAMESPACE = "billing"
SERVICE = "receiver"
# Every replica listens on the same port, as the Pods behind one Service do.
RECEIVER_PORT = 8000
# Private-range /32s on the namespace's own `lo`; devstack.node.netns says why they reach nothing.
REPLICA_ADDRESSES = ("10.251.0.2", "10.251.0.3")


def fingerprint(secret: str) -> str:
    """The fingerprint a receiver lists for a signing secret (the cross-part contract)."""
    return hashlib.sha256(secret.encode()).hexdigest()[:16]


def fingerprints(replica: FedReceiver, webhook: str) -> list[str]:
    """Fingerprints the replica lists for `webhook` (ns/name); none if not loaded."""
    response = httpx.get(f"{replica.url}/readyz/webhooks/{webhook}", timeout=2)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    return list(response.json()["fingerprints"])


@dataclass
class ReplicaStack:
    """The private namespace and everything running in it."""

    netns: NetworkNamespace
    kubectl: Kubectl
    stripe: StripeTarget
    api_key: str
    replicas: list[FedReceiver]
    operator: OperatorProcess | None = None
    service_uid: str = ""

    def webhook(self, name: str) -> dict[str, Any]:
        return get_json(self.kubectl, "stripewebhook", name, "-n", NAMESPACE)

    def endpoint_status(self, endpoint_id: str) -> str:
        client = self.stripe.client(self.api_key)
        return str(client.v1.webhook_endpoints.retrieve(endpoint_id).status)

    def endpoint_ids(self) -> list[str]:
        client = self.stripe.client(self.api_key)
        return [e.id for e in client.v1.webhook_endpoints.list({"limit": 100}).data]

    def signing_secret(self, name: str) -> str:
        secret = get_json(self.kubectl, "secret", f"{name}-stripe-webhook", "-n", NAMESPACE)
        return secret_data(secret)[c.SECRET_KEY_SIGNING]

    def publish_endpoints(self, unready: set[str]) -> None:
        """Write the Service's EndpointSlice as the endpoint-slice controller would for one
        Pod per replica, with `ready: false` for the addresses in `unready`."""
        body = {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": f"{SERVICE}-pods",
                "namespace": NAMESPACE,
                "labels": {
                    "kubernetes.io/service-name": SERVICE,
                    "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
                },
                "ownerReferences": [
                    {
                        "apiVersion": "v1",
                        "kind": "Service",
                        "name": SERVICE,
                        "uid": self.service_uid,
                        "controller": True,
                        "blockOwnerDeletion": True,
                    }
                ],
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": RECEIVER_PORT, "protocol": "TCP"}],
            "endpoints": [
                {
                    "addresses": [replica.host],
                    "conditions": {
                        "ready": replica.host not in unready,
                        "serving": replica.host not in unready,
                        "terminating": False,
                    },
                }
                for replica in self.replicas
            ],
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(body))


def create_service(kubectl: Kubectl) -> str:
    """Create the receiver Service (no selector: no Pods exist here) and return its uid."""
    body = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": SERVICE, "namespace": NAMESPACE},
        "spec": {"ports": [{"name": "http", "port": RECEIVER_PORT, "targetPort": RECEIVER_PORT}]},
    }
    kubectl("apply", "-f", "-", input=json.dumps(body))
    return str(get_json(kubectl, "service", SERVICE, "-n", NAMESPACE)["metadata"]["uid"])


@pytest.fixture(scope="module")
def replica_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReplicaStack]:
    """Start the whole stack inside a fresh private namespace; stop each process by PID and
    delete the namespace afterwards, also when starting failed half-way."""
    workdir = tmp_path_factory.mktemp("replica-handshake")
    with contextlib.ExitStack() as cleanup:
        netns = cleanup.enter_context(NetworkNamespace.create(REPLICA_ADDRESSES))
        with netns.entered():
            plane = cleanup.enter_context(ControlPlane(workdir / "kube"))
            kubectl = Kubectl(plane.kubeconfig, workdir / "kubectl-cache")
            apply_crd(kubectl)
            kubectl("create", "namespace", NAMESPACE)
            emulator = EmulatorProcess(workdir / "stripe").start()
            cleanup.callback(emulator.stop)
            stripe = StripeTarget(emulator.base_url)
            api_key = stripe.new_api_key()
            kubectl("apply", "-f", "-", input=api_key_secret(NAMESPACE, api_key))
            stack = ReplicaStack(netns, kubectl, stripe, api_key, replicas=[])
            stack.service_uid = create_service(kubectl)
            for address in REPLICA_ADDRESSES:
                replica = FedReceiver(
                    plane.kubeconfig,
                    NAMESPACE,
                    RECEIVER_SECRET,
                    workdir / f"receiver-{address}",
                    host=address,
                    port=RECEIVER_PORT,
                )
                cleanup.callback(replica.stop)
                stack.replicas.append(replica.start())
            stack.publish_endpoints(unready=set())
            # The receiver URL names the Service as the chart does; with `--receiver-service`
            # only its scheme and path are used (nothing in the namespace resolves that name).
            stack.operator = OperatorProcess(
                plane.kubeconfig,
                emulator.base_url,
                NAMESPACE,
                workdir,
                random_cluster_id(),
                extra_args=(
                    f"--receiver-url=http://{SERVICE}.{NAMESPACE}.svc:{RECEIVER_PORT}",
                    f"--receiver-service={NAMESPACE}/{SERVICE}",
                ),
            )
            cleanup.callback(stack.operator.kill)
            stack.operator.start()
        yield stack


@pytest.fixture
def stack(replica_stack: ReplicaStack) -> Iterator[ReplicaStack]:
    """The stack with every replica ready and fed, this test's code running inside its
    namespace."""
    with replica_stack.netns.entered():
        for replica in replica_stack.replicas:
            replica.release()
        replica_stack.publish_endpoints(unready=set())
        yield replica_stack


def annotate_rotation(stack: ReplicaStack, name: str, request: str) -> None:
    stack.kubectl(
        "annotate", "--overwrite", "swh", name, "-n", NAMESPACE,
        f"{c.ANNOTATION_ROTATE}={request}", f"{c.ANNOTATION_ROTATE_OVERLAP}=1s",
    )  # fmt: skip


def created(stack: ReplicaStack, name: str) -> dict[str, Any]:
    """Apply a StripeWebhook and wait until it is Ready; return it."""
    stack.kubectl("apply", "-f", "-", input=webhook_manifest(NAMESPACE, name))

    def ready() -> dict[str, Any] | None:
        body = stack.webhook(name)
        return body if condition(body, c.CONDITION_READY).get("status") == "True" else None

    return poll(f"{name} Ready", ready)


def propagating(stack: ReplicaStack, name: str) -> dict[str, Any]:
    """Wait until a rotation of `name` has written its new secret; return its status."""

    def check() -> dict[str, Any] | None:
        body = stack.webhook(name)
        return dict(body["status"]) if rotation_step(body) == "Propagating" else None

    return poll(f"{name} waiting for the receiver", check)


def rotated(stack: ReplicaStack, name: str, version: int) -> dict[str, Any]:
    """Wait until `name` is at secret `version` with its rotation over; return it."""

    def check() -> dict[str, Any] | None:
        body = stack.webhook(name)
        status = body.get("status") or {}
        idle = rotation_step(body) == "Idle"
        return body if status.get("secretVersion") == version and idle else None

    try:
        return poll(f"{name} rotated to version {version}", check)
    except AssertionError as exc:
        found = condition(stack.webhook(name), c.CONDITION_SECRET_PROPAGATED)
        raise AssertionError(f"{exc}; SecretPropagated: {found.get('message')}") from exc


def test_new_endpoint_waits_until_every_replica_holds_the_secret(stack: ReplicaStack) -> None:
    replica_a, replica_b = stack.replicas
    webhook = f"{NAMESPACE}/shop"
    first = created(stack, "shop")
    propagated = condition(first, c.CONDITION_SECRET_PROPAGATED)
    assert propagated["status"] == "True"
    assert "2 replica(s) confirmed" in propagated["message"]
    old_id = first["status"]["endpointId"]

    replica_b.hold_back()
    annotate_rotation(stack, "shop", "after-leak")
    new_id = propagating(stack, "shop")["newEndpointId"]
    new_fingerprint = fingerprint(stack.signing_secret("shop"))
    poll(
        "replica A lists the new fingerprint",
        lambda: new_fingerprint in fingerprints(replica_a, webhook),
    )

    # The operator asked both replicas after A had loaded the new secret: only B is named.
    def waiting_for_b_only() -> dict[str, Any] | None:
        found = condition(stack.webhook("shop"), c.CONDITION_SECRET_PROPAGATED)
        message = str(found.get("message", ""))
        named = replica_b.url in message and replica_a.url not in message
        return found if found.get("reason") == "WaitingForReceiver" and named else None

    waiting = poll("SecretPropagated naming replica B alone", waiting_for_b_only)
    assert waiting["status"] == "False"
    assert f"{replica_b.url} holds other secrets only" in waiting["message"]
    assert new_fingerprint not in fingerprints(replica_b, webhook)
    assert stack.endpoint_status(new_id) == "disabled"
    assert stack.endpoint_status(old_id) == "enabled"
    status = stack.webhook("shop")["status"]
    assert status["secretVersion"] == 1
    assert status["endpointId"] == old_id

    replica_b.release()
    body = rotated(stack, "shop", 2)
    assert body["status"]["endpointId"] == new_id
    assert stack.endpoint_status(new_id) == "enabled"
    assert old_id not in stack.endpoint_ids()
    propagated = condition(body, c.CONDITION_SECRET_PROPAGATED)
    assert propagated["status"] == "True"
    assert "2 replica(s) confirmed" in propagated["message"]
    for replica in stack.replicas:
        assert new_fingerprint in fingerprints(replica, webhook)


def test_replica_not_ready_in_the_endpoint_slice_is_not_asked(stack: ReplicaStack) -> None:
    replica_a, replica_b = stack.replicas
    webhook = f"{NAMESPACE}/store"
    old_id = created(stack, "store")["status"]["endpointId"]

    # B is held back and marked not ready: were it asked, it would block the rotation.
    stack.publish_endpoints(unready={replica_b.host})
    replica_b.hold_back()
    annotate_rotation(stack, "store", "while-b-starts")
    body = rotated(stack, "store", 2)

    new_id = body["status"]["endpointId"]
    assert new_id != old_id
    assert old_id not in stack.endpoint_ids()
    assert stack.endpoint_status(new_id) == "enabled"
    propagated = condition(body, c.CONDITION_SECRET_PROPAGATED)
    assert propagated["status"] == "True"
    assert "1 replica(s) confirmed" in propagated["message"]
    new_fingerprint = fingerprint(stack.signing_secret("store"))
    assert new_fingerprint in fingerprints(replica_a, webhook)
    assert new_fingerprint not in fingerprints(replica_b, webhook)
