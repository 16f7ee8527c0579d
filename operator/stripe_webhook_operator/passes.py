"""One reconcile pass over one StripeWebhook: its fresh body, the status it builds and writes,
and what it has read so far (the Secret once, an endpoint Stripe just answered with).

Status is written through the status subresource with only the fields that changed, so a
pass that finds everything in line writes nothing. Nothing secret is put in status or in an
Event: secrets go only into Secrets (kube.py) and to Stripe.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import constants as c
from stripe_webhook_operator import manifests, metrics
from stripe_webhook_operator.exceptions import SecretConflict, StripeNotFound
from stripe_webhook_operator.kube import UNREAD, Unread, post_event
from stripe_webhook_operator.manifests import SigningKeys, StripeEndpoint, WebhookSpec
from stripe_webhook_operator.rotation_steps import Record
from stripe_webhook_operator.secret_value import SecretValue

if TYPE_CHECKING:
    from stripe_webhook_operator.runtime import Runtime

logger = logging.getLogger(__name__)


class Pass:
    """One reconcile pass over one StripeWebhook: its fresh body and the status it builds."""

    def __init__(self, rt: Runtime, body: Mapping[str, Any], fresh: bool) -> None:
        self.rt = rt
        self.body = body
        self.fresh = fresh
        self.spec: WebhookSpec = manifests.parse_webhook(body, rt.settings.public_base_url)
        self.status: dict[str, Any] = dict(body.get("status") or {})
        self.annotations: dict[str, str] = dict(body["metadata"].get("annotations") or {})
        self.generation = int(body["metadata"].get("generation") or 0)
        self.api_key = SecretValue("")
        # The webhook's Secret as read or written in this pass (UNREAD until then): one read
        # per pass, whatever the number of steps.
        self.secret: Mapping[str, Any] | Unread | None = UNREAD
        # An endpoint as Stripe answered it in this pass: no need to ask again.
        self.known_endpoint: StripeEndpoint | None = None
        # Status changes made durable by the next save (whichever comes first).
        self.staged: dict[str, Any] = {}

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.namespace, self.spec.name)

    # status and events ----------------------------------------------------------------

    def _with_conditions(
        self, patch: Mapping[str, Any], wanted: Sequence[cond.Condition]
    ) -> dict[str, Any]:
        full = dict(patch)
        if wanted:
            full["conditions"] = cond.merge(
                self.status.get("conditions"), wanted, self.generation, self.rt.clock()
            )
        return full

    def stage(self, patch: Mapping[str, Any], wanted: Sequence[cond.Condition] = ()) -> None:
        """Apply `patch` (and the conditions in `wanted`) to status in memory; the next save
        writes it with its own changes.

        Only for a step whose replay is harmless: if the pass ends before that save, the
        next pass does the step again."""
        for key, value in self._with_conditions(patch, wanted).items():
            self.staged[key] = value
            if value is None:
                self.status.pop(key, None)
            else:
                self.status[key] = value

    async def save(self, patch: Mapping[str, Any], wanted: Sequence[cond.Condition] = ()) -> None:
        """Patch status with `patch` and the conditions in `wanted`, and remember the result;
        nothing is written when status already says all of it."""
        full = {**self.staged, **self._with_conditions(patch, wanted)}
        changes = {
            key: value
            for key, value in full.items()
            if key in self.staged or self.status.get(key) != value
        }
        if not changes:
            return
        for key, value in changes.items():
            if value is None:
                self.status.pop(key, None)
            else:
                self.status[key] = value
        await self.rt.kube.patch_webhook_status(self.spec.namespace, self.spec.name, changes)
        self.staged = {}

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """Post an Event about this StripeWebhook."""
        post_event(self.body, warning=warning, reason=reason, message=message)

    async def fail(self, reason: str, message: str) -> None:
        """Report a failure in Ready/Synced, with one Warning Event per distinct failure."""
        metrics.ERRORS.labels(reason=reason).inc()
        previous = cond.find(self.status.get("conditions"), c.CONDITION_READY) or {}
        if previous.get("reason") != reason or previous.get("message") != message:
            self.event(reason, message, warning=True)
            logger.warning("%s: %s", self.spec.webhook, message)
        await self.save({"observedGeneration": self.generation}, cond.failed(reason, message))

    async def annotate(self, values: Mapping[str, str | None]) -> None:
        """Set annotations on the StripeWebhook (endpoint id, pending idempotency key)."""
        changes = {k: v for k, v in values.items() if self.annotations.get(k) != v}
        if not changes:
            return
        await self.rt.kube.patch_webhook_annotations(self.spec.namespace, self.spec.name, changes)
        for key, value in changes.items():
            if value is None:
                self.annotations.pop(key, None)
            else:
                self.annotations[key] = value

    async def record(self, step: Record) -> None:
        """Write the state `step` names (now if durable, else with the next save), then post
        its Events."""
        if step.durable:
            await self.save(step.patch.status, step.patch.conditions)
        else:
            self.stage(step.patch.status, step.patch.conditions)
        for event in step.events:
            self.event(event.reason, event.message, warning=event.warning)

    def is_ready(self) -> bool:
        """Return whether status says Ready=True now."""
        ready = cond.find(self.status.get("conditions"), c.CONDITION_READY) or {}
        return ready.get("status") == cond.TRUE

    # secrets --------------------------------------------------------------------------

    async def read_keys(self) -> tuple[SigningKeys | None, SecretValue | None]:
        """Return the webhook Secret's keys (None if incomplete) and its receipts key."""
        if isinstance(self.secret, Unread):
            self.secret = await self.rt.kube.get_secret(self.spec.namespace, self.spec.secret_name)
            self.rt.saw_secret(self.key, self.secret)
        secret = self.secret
        if secret is None:
            return None, None
        owners = secret.get("metadata", {}).get("ownerReferences") or []
        if not any(ref.get("uid") == self.spec.uid for ref in owners):
            raise SecretConflict(
                f"Secret '{self.spec.secret_name}' already exists and is not owned by this "
                "StripeWebhook; delete or rename it, or set `spec.secretName` to another name."
            )
        data = secret.get("data")
        return (
            manifests.read_signing_keys(data),
            manifests.decode(data, c.SECRET_KEY_RECEIPTS_API_KEY),
        )

    async def write_keys(
        self, keys: SigningKeys, livemode: bool, not_after: datetime | None
    ) -> None:
        """Write the per-webhook Secret and the webhook's entry in the receiver's Secret."""
        written = await self.rt.kube.write_owned_secret(
            self.spec.namespace,
            self.spec.secret_name,
            manifests.owner_reference(self.body),
            manifests.labels(self.spec),
            manifests.webhook_secret_data(keys),
            existing=self.secret,
        )
        self.secret = written if written is not None else UNREAD
        self.rt.saw_secret(self.key, written)
        await self.write_receiver_entry(keys, livemode, not_after)

    async def write_receiver_entry(
        self, keys: SigningKeys, livemode: bool, not_after: datetime | None
    ) -> None:
        """Put the webhook's entry into the receiver's aggregated Secret if it differs."""
        key = manifests.receiver_entry_key(self.spec.namespace, self.spec.name)
        entry = manifests.encode(manifests.receiver_entry(self.spec, keys, livemode, not_after))
        assert self.rt.receiver is not None
        await self.rt.receiver.put(key, entry)

    # Stripe ---------------------------------------------------------------------------

    async def own_endpoints(self) -> list[StripeEndpoint]:
        """Return every endpoint of the account tagged with this StripeWebhook's uid, as
        listed after this call began (one list serves the account's webhooks that ask
        together)."""
        cache = self.rt.accounts
        if cache is None:
            endpoints = await self.rt.stripe.list_endpoints(self.api_key)
        else:
            endpoints = await cache.current_endpoints(self.api_key)
        return [e for e in endpoints if e.uid == self.spec.uid]

    async def current_endpoint(self, endpoint_id: str) -> StripeEndpoint | None:
        """Return the endpoint, from the account cache on a drift pass; a cached answer that
        disagrees with the spec is checked afresh before anything acts on it."""
        known = self.known_endpoint
        if known is not None and known.id == endpoint_id:
            return known
        cache = self.rt.accounts
        if not self.fresh and cache is not None:
            cached = {e.id: e for e in await cache.endpoints(self.api_key)}.get(endpoint_id)
            if cached is not None and not self.update_params(cached):
                return cached
        try:
            return await self.rt.stripe.retrieve_endpoint(self.api_key, endpoint_id)
        except StripeNotFound:
            return None

    def update_params(self, endpoint: StripeEndpoint) -> dict[str, Any]:
        """Return what differs between `endpoint` and the spec, as update parameters."""
        version = int(self.status.get("secretVersion") or 1)
        return manifests.update_params(self.spec, endpoint, self.rt.cluster_id, version)
