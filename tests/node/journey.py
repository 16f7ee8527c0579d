"""A user's journey on the node: the chart installed, a StripeWebhook applied next to its API
key, the app's receipts registered, Stripe's events arriving through the receiver Service.

Shared by the tests of this folder: each builds on `Journey`, which reads the receiver's books
from its SQLite file on the node's volume (devstack/project/rotation/tally.py counts them).
"""

from __future__ import annotations

import base64
import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import stripe

from devstack.cluster.kubectl import Kubectl
from devstack.node.cluster import NodeCluster
from devstack.node.fixtures import NodeStripe
from devstack.processes import poll
from devstack.project.rotation.tally import Tally, count, processed_event_ids, receiver_records
from devstack.project.rotation.traffic import Subscribers, emitted_event_ids, enrol_subscribers
from devstack.release import ChartRelease
from stripe_webhook_operator import constants as c

READY_TIMEOUT = 120.0
API_KEY_SECRET = "stripe-api-key"


def webhook(name: str, *, url: str | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "apiKeySecretRef": {"name": API_KEY_SECRET, "key": "api-key"},
        "entitlements": {"premium": ["prod_premium"]},
    }
    if url is not None:
        spec["url"] = url
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "metadata": {"name": name},
        "spec": spec,
    }


@dataclass
class Journey:
    """One app's namespace on the node, served by an installed release."""

    node: NodeCluster
    stripe: NodeStripe
    release: ChartRelease
    namespace: str
    api_key: str
    receiver_url: str

    @property
    def kubectl(self) -> Kubectl:
        return self.node.kubectl()

    def client(self) -> stripe.StripeClient:
        return self.stripe.client(self.api_key)

    def apply(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=json.dumps(manifest))

    def status(self, name: str) -> dict[str, Any]:
        raw = self.kubectl("get", c.PLURAL, name, "-n", self.namespace, "-o", "json").stdout
        return dict(json.loads(raw).get("status") or {})

    def conditions(self, name: str) -> dict[str, str]:
        return {item["type"]: item["status"] for item in self.status(name).get("conditions") or []}

    def wait_ready(self, name: str, timeout: float = READY_TIMEOUT) -> dict[str, Any]:
        poll(f"{name} Ready", lambda: self.conditions(name).get("Ready") == "True", timeout)
        return self.status(name)

    def secret(self, name: str) -> dict[str, str]:
        raw = self.kubectl("get", "secret", name, "-n", self.namespace, "-o", "json").stdout
        data = json.loads(raw).get("data") or {}
        return {key: base64.b64decode(value).decode() for key, value in data.items()}

    def receipts_key(self, name: str) -> str:
        return self.secret(f"{name}{c.SECRET_NAME_SUFFIX}")[c.SECRET_KEY_RECEIPTS_API_KEY]

    def enrol(self, name: str, count_: int) -> Subscribers:
        return enrol_subscribers(
            self.stripe, self.api_key, self.receiver_url, self.receipts_key(name), count_
        )

    def subscriber(self, name: str, user: str) -> dict[str, Any]:
        answer = httpx.get(
            f"{self.receiver_url}/v1/subscribers/{user}",
            headers={"Authorization": f"Bearer {self.receipts_key(name)}"},
            timeout=10,
        )
        answer.raise_for_status()
        return dict(answer.json()["subscriber"])

    def plugin(self, *args: str, timeout: float = 240.0) -> subprocess.CompletedProcess[str]:
        """`kubectl stripe ARGS` from the host, as an admin types it."""
        return self.kubectl("stripe", *args, "-n", self.namespace, timeout=timeout)

    def database(self) -> Path:
        """The receiver's SQLite file, on the node's volume behind its claim."""
        claim = f"{self.release.receiver_service}-data"
        volume = self.kubectl(
            "get", "pvc", claim, "-n", self.release.namespace, "-o", "jsonpath={.spec.volumeName}"
        ).stdout
        path = self.kubectl("get", "pv", volume, "-o", "jsonpath={.spec.hostPath.path}").stdout
        return Path(path) / "receiver.db"

    def tally(self, name: str, *, old_endpoint: str, new_enabled_since: float) -> Tally:
        """Wait until Stripe's deliveries settle, then count every event of the account."""
        attempts = self.stripe.wait_until_settled(self.api_key, timeout=120)
        webhook_id = f"{self.namespace}/{name}"
        return count(
            emitted_event_ids(self.client()),
            attempts,
            receiver_records(self.database(), webhook_id),
            processed_event_ids(self.database(), webhook_id),
            old_endpoint=old_endpoint,
            new_enabled_since=new_enabled_since,
        )


def receiver_url(node: NodeCluster, release: ChartRelease) -> str:
    """A 127.0.0.1 URL of the host that reaches the receiver Service inside the node."""
    service_ip = release.service_ip(release.receiver_service)
    return node.expose(service_ip, 8000).url()
