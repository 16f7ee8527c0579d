"""Fixtures of the operator's integration tests: the CRD installed once, and a scene (an API key
of a fresh emulator account in a fresh namespace, operators stopped by PID afterwards)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.cluster.kubectl import Cluster, Kubectl
from devstack.processes import poll
from devstack.project.objects import apply_crd, condition, secret_data, try_get_json
from devstack.project.receiver_process import FedReceiver
from devstack.project.scene import RECEIVER_SECRET, Scene, open_scene
from stripe_webhook_operator import constants as c
from stripe_webhook_operator.runtime import Runtime
from stripe_webhook_operator.settings import Settings


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
def receiver(scene: Scene, kube_cluster: Cluster, tmp_path: Path) -> Iterator[FedReceiver]:
    """The real receiver, fed the scene's aggregated Secret by a projector, as a kubelet would."""
    process = FedReceiver(
        kube_cluster.kubeconfig, scene.namespace, RECEIVER_SECRET, tmp_path / "receiver"
    ).start()
    yield process
    process.stop()


@pytest.fixture
def scene(
    kube_cluster: Cluster,
    kubectl: Kubectl,
    kube_namespace: str,
    stripe_emulator: Any,
    stripewebhook_crd: None,
    tmp_path: Path,
) -> Iterator[Scene]:
    with open_scene(
        kubectl, kube_cluster.kubeconfig, stripe_emulator, kube_namespace, tmp_path
    ) as built:
        yield built


def bare_runtime(settings: Settings) -> Runtime:
    """A runtime with no cluster, Stripe or HTTP client: tests without a stack replace what
    would use them."""
    return Runtime(
        settings,
        kube=None,  # type: ignore[arg-type]
        stripe=None,  # type: ignore[arg-type]
        http=None,  # type: ignore[arg-type]
        cluster_id="test",
        receiver=object(),  # type: ignore[arg-type]
    )
