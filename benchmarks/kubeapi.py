"""The few Kubernetes API calls the operator benchmark makes, counted so they can be taken
out of the API server's request totals; and the API server's own request counter."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

GROUP, VERSION, PLURAL = "stripe.operator.dev", "v1alpha1", "stripewebhooks"
REQUEST_TOTAL = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$", re.MULTILINE)


def ssl_context(kubeconfig: Path) -> tuple[str, ssl.SSLContext]:
    """Return the server URL and a TLS context with the client certificate of `kubeconfig`."""
    config = yaml.safe_load(kubeconfig.read_text())
    cluster = config["clusters"][0]["cluster"]
    user = config["users"][0]["user"]
    context = ssl.create_default_context(cafile=cluster["certificate-authority"])
    context.load_cert_chain(user["client-certificate"], user["client-key"])
    return cluster["server"], context


class KubeApi:
    """An async client with the admin certificate; `calls` counts every request it made."""

    def __init__(self, kubeconfig: Path) -> None:
        server, context = ssl_context(kubeconfig)
        limits = httpx.Limits(max_connections=32)
        self.client = httpx.AsyncClient(base_url=server, verify=context, limits=limits)
        self.calls = 0

    async def close(self) -> None:
        await self.client.aclose()

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        self.calls += 1
        answer = await self.client.request(method, path, json=body, timeout=60)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    async def create_namespace(self, name: str) -> None:
        body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}
        await self.request("POST", "/api/v1/namespaces", body)

    async def create_secret(self, namespace: str, name: str, data: dict[str, str]) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": name, "namespace": namespace},
            "stringData": data,
        }
        await self.request("POST", f"/api/v1/namespaces/{namespace}/secrets", body)

    async def create_all(self, namespace: str, bodies: Sequence[dict[str, Any]]) -> None:
        """Create every object at once (bounded concurrency), as `kubectl apply` of a List."""
        gate = asyncio.Semaphore(16)
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"

        async def create(body: dict[str, Any]) -> None:
            async with gate:
                await self.request("POST", path, body)

        await asyncio.gather(*(create(body) for body in bodies))

    async def list_webhooks(self, namespace: str) -> list[dict[str, Any]]:
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        answer = await self.request("GET", path)
        return list(answer["items"])

    async def wait_all_ready(self, namespace: str, size: int, limit: float) -> bool:
        """Follow the namespace's StripeWebhooks (a list, then a watch from it) until `size`
        of them are Ready; False after `limit` seconds. A watch sees the last one turn Ready
        when it happens, where polling would add up to its interval and list every object
        again and again."""
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{PLURAL}"
        deadline = time.monotonic() + limit
        ready: dict[str, bool] = {}
        version = ""
        for _round in range(10_000):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if not version:
                listing = await self.request("GET", path)
                ready = {item["metadata"]["name"]: is_ready(item) for item in listing["items"]}
                version = listing["metadata"]["resourceVersion"]
            if len(ready) == size and all(ready.values()):
                return True
            params = {"watch": "1", "resourceVersion": version, "timeoutSeconds": "30"}
            self.calls += 1
            try:
                async with self.client.stream(
                    "GET", path, params=params, timeout=httpx.Timeout(40.0)
                ) as answer:
                    answer.raise_for_status()
                    async for line in answer.aiter_lines():
                        if not line.strip():
                            continue
                        event = json.loads(line)
                        item = event["object"]
                        if event["type"] == "ERROR":
                            version = ""  # too old a version (410): list again
                            break
                        version = item["metadata"]["resourceVersion"]
                        name = item["metadata"]["name"]
                        if event["type"] == "DELETED":
                            ready.pop(name, None)
                        else:
                            ready[name] = is_ready(item)
                        if len(ready) == size and all(ready.values()):
                            return True
                        if time.monotonic() > deadline:
                            return False
            except httpx.HTTPError:
                version = ""
        return False

    async def apply_crd(self, body: dict[str, Any]) -> None:
        """Create the CRD (a parsed manifest) and wait until the API server serves it."""
        await self.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", body)
        name = body["metadata"]["name"]
        for _ in range(600):
            crd = await self.request(
                "GET", f"/apis/apiextensions.k8s.io/v1/customresourcedefinitions/{name}"
            )
            found = (crd.get("status") or {}).get("conditions") or []
            conditions = {c["type"]: c["status"] for c in found}
            if conditions.get("Established") == "True":
                return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"The CRD {name} was not established within 60 s.")

    async def request_total(self) -> float:
        """Return the API server's `apiserver_request_total`, summed over every label."""
        self.calls += 1
        answer = await self.client.get("/metrics", timeout=60)
        answer.raise_for_status()
        return sum(float(value) for _, value in REQUEST_TOTAL.findall(answer.text))


def is_ready(webhook: dict[str, Any]) -> bool:
    """Return whether the object's Ready condition is True."""
    for condition in (webhook.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False
