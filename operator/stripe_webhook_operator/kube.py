"""The one place that reads and writes Kubernetes objects (besides kopf's own bookkeeping),
for the operator and for the kubectl plugin alike.

Requests go over httpx with the credentials the `kubernetes` package loads (kubeconfig or the
in-cluster service account), so bodies stay plain dicts and patches say their content type.
Secrets are only ever patched key by key: two writers of different keys of the receiver's
aggregated Secret never lose each other's update.
"""

from __future__ import annotations

import asyncio
import enum
import logging
import ssl
from collections.abc import Mapping
from typing import Any, Final, cast

import httpx
import kopf
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config

from stripe_webhook_operator import constants as c
from stripe_webhook_operator.exceptions import ApiKeyMissing, KubernetesError, SecretConflict
from stripe_webhook_operator.manifests import decode
from stripe_webhook_operator.secret_value import SecretValue

logger = logging.getLogger(__name__)

MERGE_PATCH = "application/merge-patch+json"
# Kubernetes requests in flight at once (more gain nothing from an API server: they queue).
MAX_IN_FLIGHT = 16
Body = Mapping[str, Any]


class Unread(enum.Enum):
    """The caller has not read the object (as opposed to: read it and found none)."""

    UNREAD = "unread"


UNREAD: Final = Unread.UNREAD


def load_configuration(
    kubeconfig: str | None = None, context: str | None = None, *, persist: bool = True
) -> k8s_client.Configuration:
    """Return API server credentials: `kubeconfig` (its `context`, else its current one) if
    given, else in-cluster if running in a pod, else the default kubeconfig ($KUBECONFIG or
    ~/.kube/config). With `persist`, refreshed credentials are written back to the file."""
    configuration = k8s_client.Configuration()
    if kubeconfig is None:
        try:
            k8s_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
            return configuration
        except k8s_config.ConfigException:
            pass
    k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
        config_file=kubeconfig,
        context=context,
        client_configuration=configuration,
        persist_config=persist,
    )
    return configuration


class _ConfigurationAuth(httpx.Auth):
    """Send the bearer token of the configuration, refreshing it the way `kubernetes` does."""

    def __init__(self, configuration: k8s_client.Configuration) -> None:
        self._configuration = configuration

    def auth_flow(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        # kubernetes >= 35 keeps the token under `BearerToken` (already "Bearer ..."), older
        # releases under `authorization`; the call below runs the refresh hook and reads both.
        token = self._configuration.get_api_key_with_prefix("BearerToken", alias="authorization")
        if token:
            request.headers["Authorization"] = token
        yield request


def _ssl_context(configuration: k8s_client.Configuration) -> ssl.SSLContext | bool:
    if not configuration.verify_ssl:
        return False
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert)
    if configuration.cert_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


def webhook_path(namespace: str, name: str = "") -> str:
    """Return the API path of StripeWebhooks in `namespace` (or of one of them)."""
    base = f"/apis/{c.GROUP}/{c.VERSION}/namespaces/{namespace}/{c.PLURAL}"
    return f"{base}/{name}" if name else base


def secret_path(namespace: str, name: str = "") -> str:
    """Return the API path of Secrets in `namespace` (or of one of them)."""
    base = f"/api/v1/namespaces/{namespace}/secrets"
    return f"{base}/{name}" if name else base


def secret_body(
    namespace: str, name: str, metadata: Mapping[str, Any], data: Mapping[str, str | None]
) -> dict[str, Any]:
    """Return an Opaque Secret to create; keys whose value is None are left out."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, **metadata},
        "data": {k: v for k, v in data.items() if v is not None},
    }


def api_key_in(
    secret: Mapping[str, Any] | None, namespace: str, name: str, key: str
) -> SecretValue:
    """Return the Stripe API key held by `secret` (Secret namespace/name, under `key`), or
    raise ApiKeyMissing saying why there is none."""
    if secret is None:
        raise ApiKeyMissing(
            f"Secret '{name}' named by `spec.apiKeySecretRef.name` does not exist in "
            f"namespace '{namespace}'; create it with the Stripe API key under key '{key}'."
        )
    value = decode(secret.get("data"), key)
    if value is None:
        raise ApiKeyMissing(
            f"Secret '{name}' has no key `{key}`; set `spec.apiKeySecretRef.key` to the key "
            "that holds the Stripe API key."
        )
    return SecretValue(value.reveal().strip())


class Kube:
    """Async access to the few objects the operator touches."""

    def __init__(self, http: httpx.AsyncClient, max_in_flight: int = MAX_IN_FLIGHT) -> None:
        self._http = http
        # Requests beyond this many wait here rather than in httpx's connection pool, whose
        # bookkeeping costs grow with the number of waiting requests times connections: with
        # hundreds of webhooks reconciling at once, it took most of the operator's CPU.
        self._slots = asyncio.Semaphore(max_in_flight)

    @classmethod
    def from_configuration(cls, configuration: k8s_client.Configuration) -> Kube:
        """Return a client for the API server of `configuration`."""
        http = httpx.AsyncClient(
            base_url=configuration.host,
            verify=_ssl_context(configuration),
            auth=_ConfigurationAuth(configuration),
            # Requests queue in Kube._request first; waiting for a pooled connection is flow
            # control, not a failure, so its timeout is long.
            timeout=httpx.Timeout(30.0, pool=300.0),
            limits=httpx.Limits(
                max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT
            ),
        )
        return cls(http)

    async def close(self) -> None:
        """Close the HTTP connections."""
        await self._http.aclose()

    async def _request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        content_type: str | None = None,
        params: Mapping[str, str] | None = None,
        missing_ok: bool = False,
    ) -> dict[str, Any] | None:
        headers = {"Content-Type": content_type} if content_type else None
        async with self._slots:
            response = await self._http.request(
                method, path, json=json, headers=headers, params=params
            )
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            try:
                detail = response.json().get("message", response.reason_phrase)
            except ValueError:
                detail = response.reason_phrase
            raise KubernetesError(
                f"{method} {path} failed with {response.status_code}: {detail}",
                response.status_code,
                str(detail),
            )
        result: dict[str, Any] = response.json()
        return result

    # StripeWebhook resources -------------------------------------------------------------

    async def get_webhook(
        self, namespace: str, name: str, *, missing_ok: bool = True
    ) -> dict[str, Any] | None:
        """Return the StripeWebhook as the API server has it now, or None if it is gone
        (without `missing_ok`, a 404 raises KubernetesError like any other refusal)."""
        return await self._request("GET", webhook_path(namespace, name), missing_ok=missing_ok)

    async def list_webhooks(
        self, namespaces: tuple[str, ...], *, missing_ok: bool = True
    ) -> list[dict[str, Any]]:
        """Return every StripeWebhook in `namespaces` (all namespaces when empty)."""
        paths = (
            [webhook_path(ns) for ns in namespaces]
            if namespaces
            else [f"/apis/{c.GROUP}/{c.VERSION}/{c.PLURAL}"]
        )
        items: list[dict[str, Any]] = []
        for path in paths:
            result = await self._request("GET", path, missing_ok=missing_ok)
            items.extend((result or {}).get("items") or [])
        return items

    async def patch_webhook_status(
        self, namespace: str, name: str, status: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        """Merge `status` into the status subresource (None values remove fields)."""
        return await self._request(
            "PATCH",
            webhook_path(namespace, name) + "/status",
            json={"status": dict(status)},
            content_type=MERGE_PATCH,
            missing_ok=True,
        )

    async def patch_webhook_annotations(
        self,
        namespace: str,
        name: str,
        annotations: Mapping[str, str | None],
        *,
        missing_ok: bool = True,
    ) -> dict[str, Any] | None:
        """Set (or, with None, remove) annotations on the StripeWebhook."""
        return await self._request(
            "PATCH",
            webhook_path(namespace, name),
            json={"metadata": {"annotations": dict(annotations)}},
            content_type=MERGE_PATCH,
            missing_ok=missing_ok,
        )

    # Secrets -----------------------------------------------------------------------------

    async def get_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """Return a Secret, or None if it does not exist."""
        return await self._request("GET", secret_path(namespace, name), missing_ok=True)

    async def read_api_key(self, namespace: str, name: str, key: str) -> SecretValue:
        """Return the Stripe API key of a StripeWebhook, or raise ApiKeyMissing saying why."""
        return api_key_in(await self.get_secret(namespace, name), namespace, name, key)

    async def write_owned_secret(
        self,
        namespace: str,
        name: str,
        owner: Mapping[str, Any],
        labels: Mapping[str, str],
        data: Mapping[str, str | None],
        *,
        existing: Mapping[str, Any] | Unread | None = UNREAD,
    ) -> dict[str, Any]:
        """Create or patch the per-webhook Secret; refuse to touch one owned by someone else.

        `existing` is the Secret as the caller just read it (None: it did not exist), which
        spares reading it again. Return the Secret as written."""
        current = (
            await self.get_secret(namespace, name) if isinstance(existing, Unread) else existing
        )
        # Two rounds: the Secret may appear (409) or vanish (404) between the read and the write.
        for _attempt in range(2):
            if current is None:
                metadata = {"labels": dict(labels), "ownerReferences": [dict(owner)]}
                body = secret_body(namespace, name, metadata, data)
                try:
                    created = await self._request("POST", secret_path(namespace), json=body)
                except KubernetesError as exc:
                    if exc.status != 409:
                        raise
                else:
                    return created or {}
                current = await self.get_secret(namespace, name)
                if current is None:
                    continue
            owners = current.get("metadata", {}).get("ownerReferences") or []
            if not any(ref.get("uid") == owner["uid"] for ref in owners):
                raise SecretConflict(
                    f"Secret '{name}' already exists and is not owned by this StripeWebhook; "
                    "delete or rename it, or set `spec.secretName` to another name."
                )
            written = await self._request(
                "PATCH",
                secret_path(namespace, name),
                json={"metadata": {"labels": dict(labels)}, "data": dict(data)},
                content_type=MERGE_PATCH,
                missing_ok=True,
            )
            if written is not None:
                return written
            current = None
        raise KubernetesError(f"Secret '{namespace}/{name}' could not be written.", 409)

    async def disown_secret(self, namespace: str, name: str, owner_uid: str) -> None:
        """Remove the StripeWebhook's owner reference so the Secret outlives it (Orphan)."""
        existing = await self.get_secret(namespace, name)
        if existing is None:
            return
        owners = existing.get("metadata", {}).get("ownerReferences") or []
        kept = [ref for ref in owners if ref.get("uid") != owner_uid]
        if len(kept) == len(owners):
            return
        await self._request(
            "PATCH",
            secret_path(namespace, name),
            json={"metadata": {"ownerReferences": kept or None}},
            content_type=MERGE_PATCH,
        )

    async def put_receiver_entries(
        self, namespace: str, name: str, entries: Mapping[str, str | None]
    ) -> str | None:
        """Set (base64 values) or remove (None) keys of the receiver's aggregated Secret.

        A merge patch of some keys is applied by the API server on its latest copy, so writers
        of other keys never overwrite each other; a create race (409) falls back to the patch.
        """
        patch = {"data": dict(entries)}
        for _attempt in range(5):
            result = await self._request(
                "PATCH",
                secret_path(namespace, name),
                json=patch,
                content_type=MERGE_PATCH,
                missing_ok=True,
            )
            kept = {key: value for key, value in entries.items() if value is not None}
            if result is not None or not kept:
                return _resource_version(result)
            labels = {c.LABEL_MANAGED_BY: c.LABEL_MANAGED_BY_VALUE}
            body = secret_body(namespace, name, {"labels": labels}, kept)
            try:
                return _resource_version(
                    await self._request("POST", secret_path(namespace), json=body)
                )
            except KubernetesError as exc:
                if exc.status != 409:
                    raise
        raise KubernetesError(f"Secret '{namespace}/{name}' could not be written.", 409)

    # Discovery and identity --------------------------------------------------------------

    async def ready_addresses(self, namespace: str, service: str) -> list[tuple[str, int]]:
        """Return (address, port) of every ready endpoint behind a Service's EndpointSlices."""
        result = await self._request(
            "GET",
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            params={"labelSelector": f"kubernetes.io/service-name={service}"},
        )
        addresses: list[tuple[str, int]] = []
        for slice_ in (result or {}).get("items") or []:
            ports = slice_.get("ports") or []
            if not ports or ports[0].get("port") is None:
                continue
            port = int(ports[0]["port"])
            for endpoint in slice_.get("endpoints") or []:
                if (endpoint.get("conditions") or {}).get("ready") is False:
                    continue
                addresses.extend((address, port) for address in endpoint.get("addresses") or [])
        return sorted(set(addresses))

    async def service_pods(self, namespace: str, service: str) -> list[str]:
        """Names of the Pods behind a Service's EndpointSlices, ready or not."""
        result = await self._request(
            "GET",
            f"/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices",
            params={"labelSelector": f"kubernetes.io/service-name={service}"},
        )
        names = {
            str(target["name"])
            for slice_ in (result or {}).get("items") or []
            for endpoint in slice_.get("endpoints") or []
            if (target := endpoint.get("targetRef") or {}).get("kind") == "Pod"
        }
        return sorted(names)

    async def annotate_pod(self, namespace: str, name: str, annotations: dict[str, str]) -> None:
        """Set annotations of a Pod (gone already: nothing to do)."""
        await self._request(
            "PATCH",
            f"/api/v1/namespaces/{namespace}/pods/{name}",
            json={"metadata": {"annotations": annotations}},
            content_type=MERGE_PATCH,
            missing_ok=True,
        )

    async def server_version(self) -> dict[str, Any]:
        """Return the API server's version (any authenticated identity may read it): the
        cheapest proof that the API server answers."""
        return await self._request("GET", "/version") or {}

    async def namespace_uid(self, namespace: str) -> str | None:
        """Return the uid of a namespace (the default cluster id is kube-system's)."""
        result = await self._request("GET", f"/api/v1/namespaces/{namespace}", missing_ok=True)
        return None if result is None else str(result["metadata"]["uid"])


def _resource_version(body: dict[str, Any] | None) -> str | None:
    return None if body is None else str(body["metadata"].get("resourceVersion") or "") or None


def post_event(body: Body, *, warning: bool, reason: str, message: str) -> None:
    """Post a Kubernetes Event about the StripeWebhook (through kopf's queue)."""
    kopf.event(
        cast(kopf.Body, body),
        type="Warning" if warning else "Normal",
        reason=reason,
        message=message,
    )
