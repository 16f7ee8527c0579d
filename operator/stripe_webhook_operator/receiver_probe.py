"""The readiness handshake: ask the receiver whether it has loaded a signing secret.

`GET {receiver}/readyz/webhooks/{ns}/{name}` lists the fingerprints of the secrets a receiver
replica holds. With `--receiver-service`, every ready address of the Service's EndpointSlices is
asked directly: behind the Service's load-balanced address one pod's answer says nothing about
the others.
"""

from __future__ import annotations

import ipaddress
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import httpx

from stripe_webhook_operator.kube import Kube

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProbeResult:
    """Whether every asked replica holds the fingerprint, and a sentence on what was seen."""

    confirmed: bool
    detail: str


def replica_urls(receiver_url: str, addresses: list[tuple[str, int]]) -> list[str]:
    """Return the receiver URL re-pointed at each (address, port), keeping scheme and path."""
    parts = urlsplit(receiver_url)
    urls = []
    for address, port in addresses:
        host = f"[{address}]" if ipaddress.ip_address(address).version == 6 else address
        urls.append(urlunsplit((parts.scheme, f"{host}:{port}", parts.path, "", "")))
    return urls


async def _holds(http: httpx.AsyncClient, base: str, webhook: str, fingerprint: str) -> str | None:
    """Return None if the replica at `base` lists `fingerprint`, else what it said instead."""
    try:
        response = await http.get(f"{base.rstrip('/')}/readyz/webhooks/{webhook}")
    except httpx.HTTPError as exc:
        return f"{base} could not be reached ({exc.__class__.__name__})"
    if response.status_code == 404:
        return f"{base} has not loaded the webhook yet"
    if response.status_code != 200:
        return f"{base} answered {response.status_code}"
    try:
        fingerprints = response.json().get("fingerprints") or []
    except ValueError:
        return f"{base} answered something that is not JSON"
    return None if fingerprint in fingerprints else f"{base} holds other secrets only"


async def probe(
    http: httpx.AsyncClient,
    kube: Kube,
    receiver_url: str,
    receiver_service: tuple[str, str] | None,
    webhook: str,
    fingerprint: str,
) -> ProbeResult:
    """Ask the receiver (each ready replica, with a Service) whether it holds `fingerprint`."""
    if receiver_service is None:
        bases = [receiver_url]
    else:
        addresses = await kube.ready_addresses(*receiver_service)
        if not addresses:
            return ProbeResult(False, "the receiver Service has no ready address")
        bases = replica_urls(receiver_url, addresses)
    problems = [p for p in [await _holds(http, b, webhook, fingerprint) for b in bases] if p]
    if problems:
        return ProbeResult(False, "; ".join(problems))
    return ProbeResult(True, f"{len(bases)} replica(s) confirmed")
