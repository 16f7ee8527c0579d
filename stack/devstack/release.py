"""The project's chart, installed on the local node the way a user installs it.

`helm install --wait` of charts/stripe-webhook-operator with the image `make image` built
(`localhost/stripe-webhook-operator:dev`, `pullPolicy: IfNotPresent`: containerd already holds
it), the operator pointed at the Stripe emulator inside the node, and endpoint URLs built from
the receiver Service's cluster DNS name, which the emulator (inside the node) resolves and
reaches through kube-proxy as Stripe would reach an Ingress. The demo, the chart journey
tests and the propagation benchmark all install it through `ChartRelease`.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from devstack.cluster.kubectl import Kubectl
from devstack.image.images import PROJECT_IMAGE
from devstack.node.network import CLUSTER_DOMAIN
from devstack.processes import REPO_ROOT, StackError, tool

CHART_NAME = "stripe-webhook-operator"
CHART = REPO_ROOT / "charts" / CHART_NAME
RECEIVER_PORT = 8000
INSTALL_TIMEOUT = "5m"
HELM_TIMEOUT = 400.0


def helm(
    kubeconfig: Path, *args: str, check: bool = True, timeout: float = HELM_TIMEOUT
) -> subprocess.CompletedProcess[str]:
    """Run the built helm against `kubeconfig`; raise StackError with its output on failure."""
    argv = [str(tool("helm")), *args, f"--kubeconfig={kubeconfig}"]
    env = dict(os.environ, HELM_CACHE_HOME=str(kubeconfig.parent / "helm-cache"))
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env)
    if check and result.returncode != 0:
        output = result.stdout + result.stderr
        raise StackError(f"`helm {' '.join(args[:2])}` exited {result.returncode}:\n{output}")
    return result


IMAGE_REPOSITORY, _, IMAGE_TAG = PROJECT_IMAGE.rpartition(":")


def image_values() -> list[str]:
    """`--set`s that make the chart run the locally built image (containerd holds it)."""
    return [
        f"image.repository={IMAGE_REPOSITORY}",
        f"image.tag={IMAGE_TAG}",
        "image.pullPolicy=IfNotPresent",
    ]


def fullname(release: str) -> str:
    """The prefix of a release's object names (the chart's `swo.fullname`)."""
    return release if CHART_NAME in release else f"{release}-{CHART_NAME}"


def receiver_base_url(release: str, namespace: str) -> str:
    """The receiver Service of a release by its cluster DNS name, as endpoint URLs' base."""
    host = f"{fullname(release)}-receiver.{namespace}.svc.{CLUSTER_DOMAIN}"
    return f"http://{host}:{RECEIVER_PORT}"


@dataclass
class ChartRelease:
    """One release of the chart in `namespace` of the node's cluster."""

    kubectl: Kubectl
    namespace: str
    stripe_api_base: str
    name: str = CHART_NAME
    values: Sequence[str] = ()
    sets: list[str] = field(default_factory=list)
    # Where Stripe reaches the receiver; empty: the receiver Service by its DNS name (which
    # only the emulator inside the node can use).
    public_url: str = ""

    @property
    def receiver_service(self) -> str:
        return f"{fullname(self.name)}-receiver"

    @property
    def operator_deployment(self) -> str:
        return f"{fullname(self.name)}-operator"

    @property
    def receiver_deployment(self) -> str:
        return self.receiver_service

    @property
    def public_base_url(self) -> str:
        """Endpoint URLs' base: `public_url`, or the receiver Service by its DNS name."""
        return self.public_url or receiver_base_url(self.name, self.namespace)

    def arguments(self) -> list[str]:
        args = ["--namespace", self.namespace]
        for path in self.values:
            args += ["--values", path]
        sets = [
            *image_values(),
            f"stripe.apiBase={self.stripe_api_base}",
            f"publicBaseUrl={self.public_base_url}",
            *self.sets,
        ]
        for assignment in sets:
            args += ["--set", assignment]
        return args

    def install(self, *, wait: bool = True, create_namespace: bool = True) -> ChartRelease:
        """`helm install` (with `--wait`: every Pod Ready, the PVC bound)."""
        args = ["install", self.name, str(CHART), *self.arguments()]
        if create_namespace:
            args.append("--create-namespace")
        if wait:
            args += ["--wait", f"--timeout={INSTALL_TIMEOUT}"]
        helm(self.kubectl.kubeconfig, *args)
        return self

    def upgrade(self, *extra_sets: str, wait: bool = True) -> None:
        self.sets += list(extra_sets)
        args = ["upgrade", self.name, str(CHART), *self.arguments()]
        if wait:
            args += ["--wait", f"--timeout={INSTALL_TIMEOUT}"]
        helm(self.kubectl.kubeconfig, *args)

    @contextlib.contextmanager
    def upgraded(self, *extra_sets: str) -> Iterator[ChartRelease]:
        """Upgrade with `extra_sets` and restart the operator (its requests from its start
        on then come after the upgrade); upgrade back to the values before, afterwards."""
        before = list(self.sets)
        self.upgrade(*extra_sets)
        self.restart_operator()
        try:
            yield self
        finally:
            self.sets = before
            self.upgrade()

    def restart_operator(self) -> None:
        """`kubectl rollout restart` the operator and wait until its new Pod is ready."""
        deployment = f"deployment/{self.operator_deployment}"
        self.kubectl("rollout", "restart", deployment, "-n", self.namespace)
        self.kubectl(
            "rollout", "status", deployment, "-n", self.namespace, "--timeout=180s", timeout=190
        )

    def manifests(self) -> list[dict[str, Any]]:
        """The objects the release holds now (`helm get manifest`)."""
        text = helm(
            self.kubectl.kubeconfig, "get", "manifest", self.name, "--namespace", self.namespace
        ).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def rendered(self, *extra_sets: str) -> list[dict[str, Any]]:
        """The objects `helm template` makes of the chart with this release's name, namespace
        and values, and `extra_sets` (e.g. parts the cluster has no CRDs for)."""
        args = ["template", self.name, str(CHART), *self.arguments()]
        for assignment in extra_sets:
            args += ["--set", assignment]
        text = helm(self.kubectl.kubeconfig, *args).stdout
        return [doc for doc in yaml.safe_load_all(text) if doc]

    def test(self) -> subprocess.CompletedProcess[str]:
        """`helm test`: the chart's own test Pod, from the same image."""
        return helm(
            self.kubectl.kubeconfig, "test", self.name, "--namespace", self.namespace, "--logs"
        )

    def uninstall(self) -> None:
        helm(
            self.kubectl.kubeconfig,
            "uninstall",
            self.name,
            "--namespace",
            self.namespace,
            "--wait",
            check=False,
        )

    def pods(self, component: str) -> list[str]:
        """Names of the release's running Pods of `component` (operator, receiver)."""
        names = self.kubectl(
            "get",
            "pods",
            f"--namespace={self.namespace}",
            f"--selector=app.kubernetes.io/component={component}",
            "--field-selector=status.phase=Running",
            "-o",
            "jsonpath={.items[*].metadata.name}",
        ).stdout
        return names.split()

    def receiver_pods(self) -> list[str]:
        return self.pods("receiver")

    def service_ip(self, service: str) -> str:
        return self.kubectl(
            "get",
            "service",
            service,
            f"--namespace={self.namespace}",
            "-o",
            "jsonpath={.spec.clusterIP}",
        ).stdout.strip()
