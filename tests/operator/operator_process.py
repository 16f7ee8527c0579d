"""Starting and stopping `stripe-webhook-operator` as a real subprocess (so kill -9 is real),
plus small polling helpers for the operator's integration tests."""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx

from devstack.cluster.kubectl import Kubectl
from devstack.processes import REPO_ROOT, ManagedProcess, free_port

OPERATOR_BIN = REPO_ROOT / ".venv" / "bin" / "stripe-webhook-operator"
CRD_PATH = REPO_ROOT / "crds" / "stripewebhooks.yaml"
T = TypeVar("T")


@dataclass
class OperatorProcess:
    """One operator replica watching `namespace`, with its log in `log_dir`."""

    kubeconfig: Path
    stripe_base: str
    namespace: str
    log_dir: Path
    cluster_id: str
    extra_args: Sequence[str] = ()
    metrics_port: int = field(default_factory=free_port)
    process: ManagedProcess | None = None

    def start(self, wait_ready: bool = True) -> OperatorProcess:
        """Start the operator and wait until its /healthz answers 200."""
        argv = [
            str(OPERATOR_BIN),
            f"--namespace={self.namespace}",
            f"--receiver-namespace={self.namespace}",
            f"--cluster-id={self.cluster_id}",
            "--metrics-host=127.0.0.1",
            f"--metrics-port={self.metrics_port}",
            "--public-base-url=http://127.0.0.1:9",
            "--drift-interval=2s",
            "--drift-jitter=200ms",
            "--propagation-interval=200ms",
            "--watch-server-timeout=20s",
            "--watch-client-timeout=30s",
            *self.extra_args,
        ]
        env = {
            "PATH": "/usr/bin:/bin",
            "KUBECONFIG": str(self.kubeconfig),
            "STRIPE_API_BASE": self.stripe_base,
            "HOME": str(self.log_dir),
        }
        name = f"operator-{self.metrics_port}"
        self.process = ManagedProcess(name, argv, self.log_dir / f"{name}.log", env=env).start()
        if wait_ready:
            self.wait_healthy()
        return self

    def healthy(self) -> bool:
        try:
            response = httpx.get(f"http://127.0.0.1:{self.metrics_port}/healthz", timeout=2)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Wait for /healthz 200; fail at once with the log if the process exits."""
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while not self.healthy():
            self.process.check_alive()
            if time.monotonic() > deadline:
                raise AssertionError(f"operator not healthy; log:\n{self.process.log_tail()}")
            time.sleep(0.1)

    def metrics(self) -> str:
        return httpx.get(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5).text

    def log(self) -> str:
        assert self.process is not None
        return self.process.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()

    def kill(self) -> None:
        """SIGKILL the operator (no cleanup of any kind)."""
        if self.process is not None:
            self.process.kill()


def apply_crd(kubectl: Kubectl) -> None:
    """Install the StripeWebhook CRD and wait until the API server serves it."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))
    kubectl(
        "wait",
        "--for=condition=Established",
        "crd/stripewebhooks.stripe.operator.dev",
        "--timeout=30s",
    )


def poll(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Return the first truthy value of `check()`, polling; fail naming `what` on timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:
            last = exc
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s (last error: {last})")


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(kubectl("get", *args, "-o", "json").stdout)
    return result


def try_get_json(kubectl: Kubectl, *args: str) -> dict[str, Any] | None:
    result = kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def rotation_step(body: dict[str, Any]) -> str:
    """The rotation's step: the `Rotating` condition's reason while it is True, else Idle."""
    rotating = condition(body, "Rotating")
    return str(rotating["reason"]) if rotating.get("status") == "True" else "Idle"


def api_key_secret(namespace: str, api_key: str, name: str = "stripe-api-key") -> str:
    """YAML of the API-key Secret (piped to kubectl on stdin, never on the command line)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": {"api-key": api_key},
        }
    )


def webhook_manifest(namespace: str, name: str, **spec: Any) -> str:
    body = {
        "apiVersion": "stripe.operator.dev/v1alpha1",
        "kind": "StripeWebhook",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"apiKeySecretRef": {"name": "stripe-api-key", "key": "api-key"}, **spec},
    }
    return json.dumps(body)


def random_cluster_id() -> str:
    return f"test-{secrets.token_hex(4)}"
