"""Pure builders: the parsed spec, Stripe endpoint parameters, Secret bodies, the receiver's
aggregated-Secret entry, labels, owner references and idempotency keys. No I/O here."""

from __future__ import annotations

import base64
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from stripe_webhook_operator import constants as c
from stripe_webhook_operator.secret_value import SecretValue
from stripe_webhook_operator.settings import DEFAULT_OVERLAP_SECONDS, DEFAULT_STRIPE_API_VERSION
from stripe_webhook_operator.times import parse_duration, rfc3339

Body = Mapping[str, Any]


@dataclass(frozen=True)
class WebhookSpec:
    """What one StripeWebhook asks for, with every default applied."""

    namespace: str
    name: str
    uid: str
    api_key_secret: str
    api_key_key: str
    url: str | None
    enabled_events: tuple[str, ...]
    description: str | None
    metadata: Mapping[str, str]
    api_version: str
    connect: bool
    disabled: bool
    secret_name: str
    rotation_every: float | None
    rotation_overlap: float
    deletion_policy: str
    entitlements: Mapping[str, list[str]] = field(default_factory=dict)

    @property
    def webhook(self) -> str:
        """The `namespace/name` the receiver knows the webhook by."""
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class StripeEndpoint:
    """The parts of a Stripe webhook endpoint the operator looks at (never its secret)."""

    id: str
    url: str
    status: str
    enabled_events: tuple[str, ...]
    description: str | None
    metadata: Mapping[str, str]
    api_version: str | None
    livemode: bool

    @property
    def uid(self) -> str | None:
        """The `k8s-uid` metadata: the StripeWebhook this endpoint belongs to."""
        return self.metadata.get(c.STRIPE_METADATA_UID)

    @property
    def secret_version(self) -> int | None:
        """The `k8s-secret-version` metadata, if the operator set it."""
        raw = self.metadata.get(c.STRIPE_METADATA_SECRET_VERSION)
        return int(raw) if raw and raw.isdigit() else None


def _duration_or(value: object, default: float) -> float:
    if value is None or value == "":
        return default
    return parse_duration(str(value))


def parse_webhook(body: Body, public_base_url: str | None) -> WebhookSpec:
    """Return the spec of a StripeWebhook body with the CRD's and the operator's defaults."""
    meta = body["metadata"]
    spec = body.get("spec") or {}
    ref = spec.get("apiKeySecretRef") or {}
    rotation = spec.get("rotation") or {}
    namespace, name = meta["namespace"], meta["name"]
    url = spec.get("url") or (
        f"{public_base_url}/webhooks/{namespace}/{name}" if public_base_url else None
    )
    every = rotation.get("every")
    return WebhookSpec(
        namespace=namespace,
        name=name,
        uid=meta["uid"],
        api_key_secret=ref.get("name", ""),
        api_key_key=ref.get("key", ""),
        url=url,
        enabled_events=tuple(spec.get("enabledEvents") or c.DEFAULT_ENABLED_EVENTS),
        description=spec.get("description") or None,
        metadata={str(k): str(v) for k, v in (spec.get("metadata") or {}).items()},
        api_version=spec.get("stripeApiVersion") or DEFAULT_STRIPE_API_VERSION,
        connect=bool(spec.get("connect", False)),
        disabled=bool(spec.get("disabled", False)),
        secret_name=spec.get("secretName") or f"{name}{c.SECRET_NAME_SUFFIX}",
        rotation_every=(_duration_or(every, 0.0) or None) if every else None,
        rotation_overlap=_duration_or(rotation.get("overlap"), DEFAULT_OVERLAP_SECONDS),
        deletion_policy=spec.get("deletionPolicy") or "Delete",
        entitlements={str(k): list(v) for k, v in (spec.get("entitlements") or {}).items()},
    )


def idempotency_key(uid: str, version: int) -> str:
    """Return the Idempotency-Key of the create call for secret version `version`."""
    return f"stripe-webhook-operator-{uid}-v{version}"


def endpoint_metadata(spec: WebhookSpec, cluster_id: str, version: int) -> dict[str, str]:
    """Return the endpoint's metadata: the spec's keys plus the operator's own."""
    return {
        **spec.metadata,
        c.STRIPE_METADATA_UID: spec.uid,
        c.STRIPE_METADATA_NAMESPACE: spec.namespace,
        c.STRIPE_METADATA_NAME: spec.name,
        c.STRIPE_METADATA_CLUSTER: cluster_id,
        c.STRIPE_METADATA_SECRET_VERSION: str(version),
    }


def create_params(spec: WebhookSpec, cluster_id: str, version: int) -> dict[str, Any]:
    """Return the parameters of `POST /v1/webhook_endpoints` for secret version `version`.

    They are stored in status while the version is being created, so that a replay after a
    crash sends the very same request (Stripe refuses a reused key with other parameters)."""
    params: dict[str, Any] = {
        "url": spec.url,
        "enabled_events": list(spec.enabled_events),
        "metadata": endpoint_metadata(spec, cluster_id, version),
        "api_version": spec.api_version,
    }
    if spec.connect:
        params["connect"] = True
    if spec.description:
        params["description"] = spec.description
    return params


def update_params(
    spec: WebhookSpec, endpoint: StripeEndpoint, cluster_id: str, version: int
) -> dict[str, Any]:
    """Return the fields of `endpoint` that differ from the spec, as update parameters.

    Stripe merges metadata on update, so a key the spec no longer has is sent as ''."""
    params: dict[str, Any] = {}
    if spec.url and endpoint.url != spec.url:
        params["url"] = spec.url
    if sorted(endpoint.enabled_events) != sorted(spec.enabled_events):
        params["enabled_events"] = list(spec.enabled_events)
    if (endpoint.description or None) != spec.description:
        params["description"] = spec.description or ""
    wanted = endpoint_metadata(spec, cluster_id, version)
    metadata = {k: v for k, v in wanted.items() if endpoint.metadata.get(k) != v}
    metadata.update({k: "" for k in endpoint.metadata if k not in wanted})
    if metadata:
        params["metadata"] = metadata
    wants_disabled = spec.disabled
    if (endpoint.status == "disabled") != wants_disabled:
        params["disabled"] = wants_disabled
    return params


def labels(spec: WebhookSpec) -> dict[str, str]:
    """Return the labels of every object the operator writes for this webhook."""
    return {c.LABEL_MANAGED_BY: c.LABEL_MANAGED_BY_VALUE, c.LABEL_WEBHOOK_NAME: spec.name}


def owner_reference(body: Body) -> dict[str, Any]:
    """Return an owner reference to the StripeWebhook, so its Secret goes when it goes."""
    meta = body["metadata"]
    return {
        "apiVersion": c.API_VERSION,
        "kind": c.KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def new_receipts_api_key() -> SecretValue:
    """Return a fresh random receipts API key (generated once per webhook, then kept)."""
    return SecretValue(f"rk_{secrets.token_urlsafe(32)}")


def encode(value: SecretValue) -> str:
    """Return a secret value base64-encoded for a Secret's `data`."""
    return base64.b64encode(value.reveal().encode()).decode()


def decode(data: Mapping[str, str] | None, key: str) -> SecretValue | None:
    """Return the value of `key` in a Secret's `data`, or None when absent or empty."""
    raw = (data or {}).get(key)
    if not raw:
        return None
    return SecretValue(base64.b64decode(raw).decode())


@dataclass(frozen=True)
class SigningKeys:
    """The secrets of one webhook, as its Secret holds them."""

    signing: SecretValue
    receipts_api_key: SecretValue
    endpoint_id: str
    previous: SecretValue | None = None


def webhook_secret_data(keys: SigningKeys) -> dict[str, str | None]:
    """Return the `data` of the per-webhook Secret; None removes a key in a merge patch."""
    return {
        c.SECRET_KEY_SIGNING: encode(keys.signing),
        c.SECRET_KEY_PREVIOUS_SIGNING: encode(keys.previous) if keys.previous else None,
        c.SECRET_KEY_ENDPOINT_ID: base64.b64encode(keys.endpoint_id.encode()).decode(),
        c.SECRET_KEY_RECEIPTS_API_KEY: encode(keys.receipts_api_key),
    }


def read_signing_keys(data: Mapping[str, str] | None) -> SigningKeys | None:
    """Return the keys held by a per-webhook Secret's `data`, or None if it has no secret."""
    signing = decode(data, c.SECRET_KEY_SIGNING)
    receipts = decode(data, c.SECRET_KEY_RECEIPTS_API_KEY)
    endpoint_id = decode(data, c.SECRET_KEY_ENDPOINT_ID)
    if signing is None or receipts is None or endpoint_id is None:
        return None
    return SigningKeys(
        signing=signing,
        receipts_api_key=receipts,
        endpoint_id=endpoint_id.reveal(),
        previous=decode(data, c.SECRET_KEY_PREVIOUS_SIGNING),
    )


def receiver_entry_key(namespace: str, name: str) -> str:
    """Return the key of a webhook in the receiver's aggregated Secret."""
    return f"{namespace}.{name}.json"


def receiver_entry(
    spec: WebhookSpec,
    keys: SigningKeys,
    livemode: bool,
    previous_not_after: datetime | None,
) -> SecretValue:
    """Return the JSON the receiver reads for one webhook (DESIGN.md "Secret layout")."""
    signing = [{"secret": keys.signing.reveal(), "not_after": None}]
    if keys.previous is not None:
        # No end yet while the new endpoint waits for the receiver: the old one still delivers.
        end = rfc3339(previous_not_after) if previous_not_after is not None else None
        signing.append({"secret": keys.previous.reveal(), "not_after": end})
    document = {
        "webhook": spec.webhook,
        "endpoint_id": keys.endpoint_id,
        "livemode": livemode,
        "signing_secrets": signing,
        "receipts_api_key_sha256": keys.receipts_api_key.sha256(),
        "entitlements": {k: list(v) for k, v in spec.entitlements.items()},
        # The receiver answers any other type with 400 (`.deleted` only where enabled).
        "enabled_events": list(spec.enabled_events),
    }
    return SecretValue(json.dumps(document, sort_keys=True))
