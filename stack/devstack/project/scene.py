"""A scene on the local stack: a namespace holding the API key of a fresh Stripe (emulator)
account, and a way to start operators watching it. Tests, the reliability scenarios and the
rotation benchmark all build theirs with `open_scene`."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import stripe

from devstack.cluster.kubectl import Kubectl
from devstack.processes import poll
from devstack.project.objects import (
    api_key_secret,
    condition,
    get_json,
    random_cluster_id,
    secret_data,
)
from devstack.project.operator_process import OperatorProcess
from devstack.stripe_emulator.fixtures import StripeTarget
from stripe_webhook_operator import constants as c
from stripe_webhook_operator.settings import DEFAULT_RECEIVER_SECRET_NAME

# The operators of a scene write the receiver's aggregated Secret into the scene's namespace.
RECEIVER_SECRET: Final = DEFAULT_RECEIVER_SECRET_NAME


@dataclass
class Scene:
    """A namespace with an API-key Secret for a fresh Stripe account, and how to start
    operators watching it."""

    namespace: str
    api_key: str
    stripe: StripeTarget
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


@contextlib.contextmanager
def open_scene(
    kubectl: Kubectl, kubeconfig: Path, stripe: StripeTarget, namespace: str, log_dir: Path
) -> Iterator[Scene]:
    """Put the API key of a fresh account into `namespace` (which exists) and yield a Scene
    that starts operators watching it (one cluster id for them all). On the way out, SIGKILL
    every operator it started (each step of the operator is resumable, and a graceful kopf
    shutdown only takes longer) and drop the StripeWebhooks' finalizers, which no operator is
    left to remove."""
    api_key = stripe.new_api_key()
    kubectl("apply", "-f", "-", input=api_key_secret(namespace, api_key))
    cluster_id = random_cluster_id()
    started: list[OperatorProcess] = []

    def start_operator(*args: str, wait_ready: bool = True) -> OperatorProcess:
        process = OperatorProcess(
            kubeconfig, stripe.base_url, namespace, log_dir, cluster_id, extra_args=args
        )
        started.append(process)
        return process.start(wait_ready=wait_ready)

    try:
        yield Scene(namespace, api_key, stripe, kubectl, start_operator, cluster_id)
    finally:
        for process in started:
            process.kill()
        release_webhooks(kubectl, namespace)


def release_webhooks(kubectl: Kubectl, namespace: str) -> None:
    """Drop the finalizers of every StripeWebhook in `namespace` (no operator runs any more:
    they would hold the namespace forever)."""
    names = kubectl("get", "stripewebhooks", "-n", namespace, "-o", "name", check=False)
    for resource in names.stdout.split():
        kubectl(
            "patch",
            resource,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


def ready_webhook(scene: Scene, name: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait until the StripeWebhook reports Ready=True and return it."""

    def check() -> dict[str, Any] | None:
        body = scene.webhook(name)
        return body if condition(body, c.CONDITION_READY).get("status") == "True" else None

    return poll(f"{name} Ready", check, timeout)
