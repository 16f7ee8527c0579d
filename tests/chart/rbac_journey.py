"""The journey that exercises the operator's RBAC, and the audit-log check of what it used.

Shared by tests/chart/test_operator_rbac.py (the operator as a process with the chart's
ServiceAccount token, on the kubelet-less control plane, HA values) and
tests/node/test_operator_rbac.py (the operator as the chart's Pod on the real node): each runs
the same create-update-rotate-delete journey, then compares the API server's audit log with
every grant the chart rendered.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

from devstack.cluster.kubectl import Kubectl, KubectlError
from devstack.project.objects import (
    api_key_secret,
    condition,
    get_json,
    secret_data,
    try_get_json,
    webhook_manifest,
)
from stripe_webhook_operator import constants as c
from tests.chart.grants import Grant, granted, requests, service_account_user, uses
from tests.chart.rendering import Manifest

# What a waiting step checks between polls (the operator still runs) and tells on a timeout.
Watch = tuple[Callable[[], None], Callable[[], str]]


def until(watch: Watch, what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    """Poll `check` while the operator lives; fail at once, with its log, if it dies."""
    alive, log = watch
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        alive()
        with contextlib.suppress(KubectlError):
            if value := check():
                return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout:.0f} s; log:\n{log()}")


def create_update_rotate_delete(
    kubectl: Kubectl,
    namespace: str,
    stripe: Any,
    receiver_namespace: str,
    url_base: str,
    watch: Watch,
) -> None:
    """Create a StripeWebhook next to its API key, update it in place, rotate it with no
    overlap, delete it; assert each step in Stripe and in the Secrets."""
    api_key = stripe.new_api_key()
    client = stripe.client(api_key)
    kubectl("apply", "-f", "-", input=api_key_secret(namespace, api_key))
    kubectl("apply", "-f", "-", input=webhook_manifest(namespace, "shop", description="one"))

    def ready() -> dict[str, Any] | None:
        body = get_json(kubectl, "swh", "shop", "-n", namespace)
        return body if condition(body, c.CONDITION_READY).get("status") == "True" else None

    body = until(watch, "StripeWebhook Ready", ready, timeout=90)
    (endpoint,) = client.v1.webhook_endpoints.list({"limit": 10}).data
    assert endpoint.id == body["status"]["endpointId"]
    assert endpoint.url == f"{url_base}/webhooks/{namespace}/shop"
    assert endpoint.status == "enabled"
    signing = secret_data(get_json(kubectl, "secret", "shop-stripe-webhook", "-n", namespace))
    assert signing[c.SECRET_KEY_ENDPOINT_ID] == endpoint.id
    # The aggregated Secret is written in the receiver's namespace, where the receiver mounts it.
    key = f"{namespace}.shop.json"

    def receiver_entry() -> dict[str, Any] | None:
        secret = try_get_json(
            kubectl, "secret", "stripe-webhook-receiver-secrets", "-n", receiver_namespace
        )
        raw = secret_data(secret or {}).get(key)
        return json.loads(raw) if raw else None

    entry = until(watch, "the receiver entry", receiver_entry)
    assert entry["endpoint_id"] == endpoint.id

    kubectl("apply", "-f", "-", input=webhook_manifest(namespace, "shop", description="two"))

    def described() -> bool:
        (current,) = client.v1.webhook_endpoints.list({"limit": 10}).data
        return current.id == endpoint.id and current.description == "two"

    until(watch, "the description reaching Stripe", described, timeout=60)

    # Rotate with no overlap: the per-webhook Secret beside the StripeWebhook is rewritten.
    kubectl(
        "annotate", "swh", "shop", "-n", namespace, "--overwrite",
        f"{c.ANNOTATION_ROTATE}=journey", f"{c.ANNOTATION_ROTATE_OVERLAP}=0",
    )  # fmt: skip

    def rotated() -> str | None:
        status = get_json(kubectl, "swh", "shop", "-n", namespace).get("status") or {}
        done = status.get("secretVersion") == 2 and "previousEndpointId" not in status
        ids = [e.id for e in client.v1.webhook_endpoints.list({"limit": 10}).data]
        return str(status["endpointId"]) if done and ids == [status["endpointId"]] else None

    rotated_id = until(watch, "the rotation to secret version 2", rotated, timeout=90)
    assert rotated_id != endpoint.id
    signing = secret_data(get_json(kubectl, "secret", "shop-stripe-webhook", "-n", namespace))
    assert signing[c.SECRET_KEY_ENDPOINT_ID] == rotated_id

    # Delete: the finalizer runs, the endpoint and the receiver entry go.
    kubectl("delete", "swh", "shop", "-n", namespace, "--timeout=60s")
    assert list(client.v1.webhook_endpoints.list({"limit": 10}).data) == []
    until(watch, "the receiver entry removed", lambda: receiver_entry() is None)


def check_grants(
    manifests: list[Manifest],
    release_namespace: str,
    account: str,
    audit_log: Path,
    not_requested: Collection[tuple[str, str, str]],
    since: str = "",
    namespaces: Collection[str] = (),
) -> None:
    """Every grant the chart renders for `account` was used (those in `not_requested`
    aside), a ClusterRole's also outside the release's namespace, and nothing was refused.
    The audit events counted: from `since` (an RFC 3339 time) on, and with `namespaces`, only
    those in them or in none (cluster-scoped): the journey's, not what the operator did
    meanwhile elsewhere (finishing other tests' webhooks in namespaces being deleted, which
    the API server refuses with 403 whatever the grants)."""
    grants = granted(manifests, release_namespace, account)
    assert grants, "the chart grants its operator nothing: the rendered roles were not found"
    made = [
        r
        for r in requests(audit_log, service_account_user(release_namespace, account), since=since)
        # A Namespace object is audited as in itself: the cluster id's read of kube-system.
        if not namespaces or r.namespace in (*namespaces, "") or r.resource == "namespaces"
    ]
    refused = sorted({f"{r.verb} {r.uri} ({r.code})" for r in made if r.refused})
    assert not refused, f"the operator was refused: {refused}"

    def allowed_unused(grant: Grant) -> bool:
        return (grant.verb, grant.group, grant.resource) in not_requested

    unused = sorted(
        str(g) for g in grants if not allowed_unused(g) and not any(uses(r, g) for r in made)
    )
    assert not unused, f"granted but never used by the operator in the journey: {unused}"
    # A ClusterRole grant used only in the release's own namespace belongs in its Role.
    local = sorted(
        str(g)
        for g in grants
        if g.namespace is None
        and not allowed_unused(g)
        and all(r.namespace == release_namespace for r in made if uses(r, g))
    )
    assert not local, f"granted cluster-wide but used only in {release_namespace}: {local}"
    # The allowance names only grants the chart still makes.
    stale = set(not_requested) - {(g.verb, g.group, g.resource) for g in grants}
    assert not stale, f"the allowance lists grants the chart no longer makes: {sorted(stale)}"
