"""Deletion: a StripeWebhook's deletion policy carried out before its finalizer goes, and the
orphan sweep that deletes endpoints of this cluster whose StripeWebhook is gone (with
Stripe's endpoint cap, an orphan is an outage)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping
from typing import Any

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import constants as c
from stripe_webhook_operator import manifests, metrics, rotation_status
from stripe_webhook_operator.exceptions import (
    ApiKeyMissing,
    DeletionBlocked,
    StripeAuthenticationFailed,
    StripeNotFound,
)
from stripe_webhook_operator.manifests import StripeEndpoint
from stripe_webhook_operator.passes import Pass
from stripe_webhook_operator.runtime import Runtime
from stripe_webhook_operator.secret_value import SecretValue

logger = logging.getLogger(__name__)


def force_delete_requested(annotations: Mapping[str, str]) -> bool:
    """Return whether the user asked to release the resource without Stripe."""
    return annotations.get(c.ANNOTATION_FORCE_DELETE, "").lower() in {"true", "1", "yes"}


async def finalize(rt: Runtime, body: Mapping[str, Any]) -> None:
    """When a StripeWebhook is deleted, apply its deletion policy and drop its receiver entry;
    raise DeletionBlocked while Stripe cannot be told and no force-delete is set."""
    work = Pass(rt, body, fresh=True)
    spec = work.spec
    force = force_delete_requested(work.annotations)
    try:
        work.api_key = await rt.kube.read_api_key(
            spec.namespace, spec.api_key_secret, spec.api_key_key
        )
        if spec.deletion_policy == "Orphan":
            await _orphan(work)
        else:
            await _delete_all(work)
    except (ApiKeyMissing, StripeAuthenticationFailed) as exc:
        message = exc.message if isinstance(exc, StripeAuthenticationFailed) else str(exc)
        if not force and spec.deletion_policy != "Orphan":
            text = (
                f"Cannot delete the Stripe endpoint: {message} Restore the API key, or set the "
                f'annotation `{c.ANNOTATION_FORCE_DELETE}: "true"` to release the resource '
                "and leave the endpoint in Stripe."
            )
            await work.fail(cond.DELETION_BLOCKED, text)
            raise DeletionBlocked(text) from exc
        work.event(
            "EndpointLeftInStripe",
            f"Released without Stripe ({message}); endpoint "
            f"{work.status.get('endpointId') or 'unknown'} stays in the Stripe account.",
            warning=True,
        )
        if spec.deletion_policy == "Orphan":
            await rt.kube.disown_secret(spec.namespace, spec.secret_name, spec.uid)
    assert rt.receiver is not None
    await rt.receiver.put(manifests.receiver_entry_key(spec.namespace, spec.name), None)
    metrics.record_endpoint_status(spec.uid, None)
    metrics.record_rotation_step(spec.webhook, None, rt.clock().timestamp())


def _known_endpoint_ids(work: Pass) -> set[str]:
    return rotation_status.read(work.status, work.annotations).known_endpoint_ids()


async def _delete_all(work: Pass) -> None:
    """Delete policy: every endpoint of this resource goes (404 counts as done)."""
    ids = _known_endpoint_ids(work)
    ids.update(e.id for e in await work.own_endpoints())
    for endpoint_id in sorted(ids):
        if await work.rt.stripe.delete_endpoint(work.api_key, endpoint_id):
            work.event("EndpointDeleted", f"Deleted Stripe endpoint {endpoint_id}.")


async def _orphan(work: Pass) -> None:
    """Orphan policy: the current endpoint and its Secret stay; unfinished ones go."""
    current = rotation_status.read(work.status, work.annotations).endpoint_id
    spec = work.spec
    for endpoint_id in sorted(_known_endpoint_ids(work)):
        if endpoint_id == current:
            continue
        await work.rt.stripe.delete_endpoint(work.api_key, endpoint_id)
    if current:
        # Untagged from this cluster, so the orphan sweep leaves it alone from now on.
        with contextlib.suppress(StripeNotFound):
            await work.rt.stripe.update_endpoint(
                work.api_key, str(current), {"metadata": {c.STRIPE_METADATA_CLUSTER: ""}}
            )
    await work.rt.kube.disown_secret(spec.namespace, spec.secret_name, spec.uid)
    work.event(
        "EndpointOrphaned", f"Stripe endpoint {current} and Secret '{spec.secret_name}' stay."
    )


async def sweep_orphans(rt: Runtime, api_key: SecretValue, endpoints: list[StripeEndpoint]) -> None:
    """After an account's endpoints were listed, delete those tagged with this cluster whose
    StripeWebhook no longer exists (by a list of webhooks begun after that, which the sweeps
    of other accounts asking at the same time share: live_webhooks.py)."""
    settings = rt.settings
    tagged = [
        e
        for e in endpoints
        if e.metadata.get(c.STRIPE_METADATA_CLUSTER) == rt.cluster_id
        and e.uid
        and (
            settings.clusterwide
            or e.metadata.get(c.STRIPE_METADATA_NAMESPACE) in settings.namespaces
        )
    ]
    if not tagged:
        return
    live = await rt.live_webhooks.uids()
    for endpoint in tagged:
        if endpoint.uid not in live:
            logger.info("deleting orphaned endpoint %s (its StripeWebhook is gone)", endpoint.id)
            await rt.stripe.delete_endpoint(api_key, endpoint.id)
