"""The project's Kubernetes objects as the local stack writes and reads them with kubectl: the
StripeWebhook CRD, an API-key Secret, a StripeWebhook, and what their status and data say."""

from __future__ import annotations

import base64
import json
import secrets
from typing import Any, Final

from devstack.cluster.kubectl import Kubectl
from devstack.processes import REPO_ROOT, wait_until

CRD_PATH: Final = REPO_ROOT / "crds" / "stripewebhooks.yaml"
CRD_NAME: Final = "stripewebhooks.stripe.operator.dev"


def apply_crd(kubectl: Kubectl) -> None:
    """Install the StripeWebhook CRD and wait until the API server serves it."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRD_PATH))

    # Polled rather than `kubectl wait`, which fails at once (instead of waiting) when it
    # looks before the API server has written the CRD's first conditions.
    def established() -> bool:
        crd = try_get_json(kubectl, "crd", CRD_NAME) or {}
        return condition(crd, "Established").get("status") == "True"

    wait_until(established, timeout=30, what=f"crd/{CRD_NAME} Established")


def get_json(kubectl: Kubectl, *args: str) -> dict[str, Any]:
    """Return `kubectl get ARGS -o json`."""
    result: dict[str, Any] = json.loads(kubectl("get", *args, "-o", "json").stdout)
    return result


def try_get_json(kubectl: Kubectl, *args: str) -> dict[str, Any] | None:
    """Return `kubectl get ARGS -o json`, or None when kubectl fails (say, not found)."""
    result = kubectl("get", *args, "-o", "json", check=False)
    if result.returncode != 0:
        return None
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def secret_data(secret: dict[str, Any]) -> dict[str, str]:
    """Return a Secret's data, decoded."""
    return {k: base64.b64decode(v).decode() for k, v in (secret.get("data") or {}).items()}


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    """Return the status condition of type `kind` (empty when there is none)."""
    for item in (body.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return dict(item)
    return {}


def rotation_step(body: dict[str, Any]) -> str:
    """Return a StripeWebhook's rotation step: its `Rotating` reason while True, else Idle."""
    rotating = condition(body, "Rotating")
    return str(rotating["reason"]) if rotating.get("status") == "True" else "Idle"


def api_key_secret(namespace: str, api_key: str, name: str = "stripe-api-key") -> str:
    """Return the API-key Secret as JSON (piped to kubectl on stdin, never on its command
    line)."""
    return json.dumps(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": {"api-key": api_key},
        }
    )


def webhook_manifest(namespace: str, name: str, **spec: Any) -> str:
    """Return a StripeWebhook reading the API key of `api_key_secret`, with `spec` added."""
    body = {
        "apiVersion": "stripe.operator.dev/v1alpha1",
        "kind": "StripeWebhook",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"apiKeySecretRef": {"name": "stripe-api-key", "key": "api-key"}, **spec},
    }
    return json.dumps(body)


def random_cluster_id() -> str:
    """Return a cluster id of its own for one set of operators (their orphan sweep then
    leaves every other set's endpoints alone)."""
    return f"test-{secrets.token_hex(4)}"
