"""Making a secret version: adopting an endpoint a crash left behind, recording the start of a
new version, and creating its endpoint disabled with both secrets written (the `Creating`
step). Each function carries out one step that rotation.next_step chose."""

from __future__ import annotations

import dataclasses
import logging

from stripe_webhook_operator import constants as c
from stripe_webhook_operator import manifests
from stripe_webhook_operator.exceptions import StripeIdempotencyMismatch
from stripe_webhook_operator.manifests import SigningKeys
from stripe_webhook_operator.passes import Pass
from stripe_webhook_operator.rotation import KEEP_CURRENT, KEEP_PREVIOUS
from stripe_webhook_operator.rotation_steps import (
    Adopt,
    Begin,
    Created,
    CreateEndpoint,
    DisableEndpoint,
    Observed,
    WriteSecrets,
)

logger = logging.getLogger(__name__)


async def adopt(work: Pass, step: Adopt) -> None:
    """Make the endpoint found in Stripe, whose secret the Secret holds, the current one."""
    logger.info("%s: adopting endpoint %s", work.spec.webhook, step.endpoint_id)
    await work.annotate({c.ANNOTATION_ENDPOINT_ID: step.endpoint_id})
    await work.save(step.patch.status, step.patch.conditions)


async def begin(work: Pass, step: Begin) -> None:
    """Record the start of a new secret version, after dropping a vanished endpoint."""
    if step.forget is not None:
        await work.record(step.forget)
        await work.annotate({c.ANNOTATION_ENDPOINT_ID: None})
    logger.info(
        "%s: rotation to version %d (%s)", work.spec.webhook, step.version, step.trigger.reason
    )
    await work.save(step.patch.status, step.patch.conditions)
    for event in step.events:
        work.event(event.reason, event.message, warning=event.warning)


async def create_endpoint(work: Pass, step: CreateEndpoint, seen: Observed) -> Observed:
    """Create (or replay) the endpoint; a refused key yields the versions Stripe holds."""
    await work.annotate({c.ANNOTATION_PENDING_IDEMPOTENCY_KEY: step.idempotency_key})
    try:
        endpoint, signing = await work.rt.stripe.create_endpoint(
            work.api_key, step.params, step.idempotency_key
        )
    except StripeIdempotencyMismatch:
        own = await work.own_endpoints()
        return dataclasses.replace(seen, seen_versions=tuple(e.secret_version or 0 for e in own))
    return dataclasses.replace(seen, created=Created(endpoint, signing))


async def disable_endpoint(work: Pass, step: DisableEndpoint, seen: Observed) -> Observed:
    """Disable the endpoint just created."""
    assert seen.created is not None
    endpoint = await work.rt.stripe.update_endpoint(
        work.api_key, step.endpoint_id, {"disabled": True}
    )
    return dataclasses.replace(seen, created=dataclasses.replace(seen.created, endpoint=endpoint))


async def write_secrets(work: Pass, step: WriteSecrets, seen: Observed) -> None:
    """Write the new secret, and the one `step.keep` names as the previous, into the webhook's
    Secret and the receiver's entry; then record the next state."""
    assert seen.created is not None
    existing, receipts = await work.read_keys()
    previous = None
    if existing is not None:
        previous = {KEEP_CURRENT: existing.signing, KEEP_PREVIOUS: existing.previous}.get(
            step.keep or ""
        )
    keys = SigningKeys(
        signing=seen.created.signing,
        receipts_api_key=receipts or manifests.new_receipts_api_key(),
        endpoint_id=step.endpoint_id,
        previous=previous,
    )
    await work.write_keys(keys, seen.created.endpoint.livemode, None)
    await work.record(step.then)
