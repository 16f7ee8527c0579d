"""Fixtures of the operator's integration tests: the CRD installed once, an API key (a fresh
emulator account) in a fresh namespace, and operator replicas stopped by PID afterwards."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import stripe

from devstack.cluster.kubectl import Cluster, Kubectl
from stripe_webhook_operator import constants as c
from tests.operator.operator_process import (
    OperatorProcess,
    api_key_secret,
    apply_crd,
    condition,
    get_json,
    poll,
    random_cluster_id,
    secret_data,
    try_get_json,
)

RECEIVER_SECRET = "stripe-webhook-receiver-secrets"


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

    def webhook(self, name: str) -> dict[str, Any]:
        return get_json(self.kubectl, "stripewebhook", name, "-n", self.namespace)

    def secret(self, name: str) -> dict[str, str]:
        return secret_data(get_json(self.kubectl, "secret", name, "-n", self.namespace))

    def events(self, name: str) -> list[dict[str, Any]]:
        """Events about the StripeWebhook `name`, oldest first."""
        found = get_json(
            self.kubectl,
            "events",
            "-n",
            self.namespace,
            f"--field-selector=involvedObject.name={name},involvedObject.kind=StripeWebhook",
        )
        return list(found.get("items") or [])

    def event_reasons(self, name: str) -> list[str]:
        return [str(item["reason"]) for item in self.events(name)]


def ready_webhook(scene: Scene, name: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until the StripeWebhook reports Ready=True and return it."""

    def check() -> dict[str, Any] | None:
        body = scene.webhook(name)
        return body if condition(body, c.CONDITION_READY).get("status") == "True" else None

    return poll(f"{name} Ready", check, timeout)


def condition_reason(
    scene: Scene, name: str, reason: str, kind: str = c.CONDITION_READY
) -> dict[str, Any]:
    """Wait until condition `kind` of `name` has `reason`; return the StripeWebhook."""

    def check() -> dict[str, Any] | None:
        body = scene.webhook(name)
        return body if condition(body, kind).get("reason") == reason else None

    return poll(f"{name} {kind} reason {reason}", check)


def receiver_entry(scene: Scene, name: str) -> dict[str, Any] | None:
    secret = try_get_json(scene.kubectl, "secret", RECEIVER_SECRET, "-n", scene.namespace)
    raw = secret_data(secret or {}).get(f"{scene.namespace}.{name}.json")
    return json.loads(raw) if raw else None


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
        # SIGKILL: every step of the operator is resumable, and a graceful kopf shutdown
        # (cancelling each webhook's loop) only slows the suite down.
        process.kill()
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
