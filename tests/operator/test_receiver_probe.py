"""The readiness handshake's replica discovery, in parts: ready addresses read from real
EndpointSlices (documentation-range addresses, never contacted), URL building, and a Service
with no ready address. The handshake with real receiver replicas behind an EndpointSlice runs
in tests/operator/test_replica_handshake.py, inside a private network namespace, since the API
server refuses loopback addresses in EndpointSlices."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from stripe_webhook_operator.kube import Kube, load_configuration
from stripe_webhook_operator.receiver_probe import probe, replica_urls


def test_replica_urls_keep_scheme_and_path() -> None:
    urls = replica_urls("https://receiver.example:8443/base", [("10.0.0.7", 8000), ("fd00::1", 9)])
    assert urls == ["https://10.0.0.7:8000/base", "https://[fd00::1]:9/base"]


def endpoint_slice(namespace: str, name: str, addresses: list[tuple[str, bool]]) -> str:
    return json.dumps(
        {
            "apiVersion": "discovery.k8s.io/v1",
            "kind": "EndpointSlice",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "labels": {"kubernetes.io/service-name": "receiver"},
            },
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": 8000, "protocol": "TCP"}],
            "endpoints": [
                {"addresses": [address], "conditions": {"ready": ready}}
                for address, ready in addresses
            ],
        }
    )


@pytest.fixture
async def kube(kube_cluster: Any) -> AsyncIterator[Kube]:
    client = Kube.from_configuration(load_configuration(str(kube_cluster.kubeconfig)))
    yield client
    await client.close()


@pytest.mark.integration
async def test_ready_addresses_come_from_every_slice_and_skip_unready(
    kube: Kube, kubectl: Any, kube_namespace: str
) -> None:
    # Documentation-range addresses (192.0.2.0/24): read from the API, never contacted.
    kubectl(
        "apply",
        "-f",
        "-",
        input=endpoint_slice(kube_namespace, "r-a", [("192.0.2.10", True), ("192.0.2.11", False)]),
    )
    kubectl("apply", "-f", "-", input=endpoint_slice(kube_namespace, "r-b", [("192.0.2.12", True)]))
    addresses = await kube.ready_addresses(kube_namespace, "receiver")
    assert addresses == [("192.0.2.10", 8000), ("192.0.2.12", 8000)]


@pytest.mark.integration
async def test_no_ready_replica_means_not_propagated(
    kube: Kube, kubectl: Any, kube_namespace: str
) -> None:
    kubectl(
        "apply", "-f", "-", input=endpoint_slice(kube_namespace, "r-a", [("192.0.2.10", False)])
    )
    async with httpx.AsyncClient() as http:
        result = await probe(
            http, kube, "http://receiver:8000", (kube_namespace, "receiver"), "ns/app", "0" * 16
        )
    assert not result.confirmed
    assert "no ready address" in result.detail
