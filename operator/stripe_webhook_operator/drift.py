"""Drift: with no rotation step due, make Stripe match the spec (fields updated in place, an
endpoint Stripe disabled enabled again and its gap recorded for recovery, leftover endpoints of
this resource deleted), keep the receiver's entry current and report Ready; then say how long
until the next check."""

from __future__ import annotations

import logging

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import gap_records, metrics, rotation
from stripe_webhook_operator.manifests import StripeEndpoint
from stripe_webhook_operator.passes import Pass
from stripe_webhook_operator.rotation_steps import Settle

logger = logging.getLogger(__name__)


async def settle(work: Pass, step: Settle) -> float:
    """When no rotation step is due, correct drift and report Ready; return the wait."""
    spec = work.spec
    endpoint = await correct(work, step.endpoint)
    keys, _ = await work.read_keys()
    assert keys is not None
    await work.write_receiver_entry(keys, endpoint.livemode, step.previous_expires)
    if (
        not step.in_overlap
        and work.rt.accounts is not None
        and not work.fresh
        and work.known_endpoint is None  # just enabled: its leftovers wait for the next pass
    ):
        await drop_duplicates(work, endpoint.id)
    metrics.record_endpoint_status(spec.uid, endpoint.status)
    if endpoint.status == "enabled":
        gap_records.delivering(work)
    wanted = cond.ready()
    if not work.rt.settings.handshake_configured:
        wanted.append(cond.propagated(False))
    await work.save(
        {
            "endpointId": endpoint.id,
            "url": endpoint.url,
            "stripeStatus": endpoint.status,
            "livemode": endpoint.livemode,
            "secretName": spec.secret_name,
            "observedGeneration": work.generation,
        },
        wanted,
    )
    delay = work.rt.drift_delay(work.api_key)
    if step.deadline is not None:
        delay = min(delay, rotation.seconds_until(step.deadline, work.rt.clock()))
    return delay


async def correct(work: Pass, endpoint: StripeEndpoint) -> StripeEndpoint:
    """Update in place what differs from the spec; re-enable an endpoint Stripe disabled."""
    params = work.update_params(endpoint)
    if not params:
        return endpoint
    stripe_disabled = endpoint.status == "disabled" and not work.spec.disabled
    if stripe_disabled:
        gap_records.disabled_by_stripe(work)
        await work.fail(
            cond.ENDPOINT_DISABLED,
            f"Stripe reports endpoint {endpoint.id} as disabled (usually after failed "
            "deliveries); the operator re-enables it — check the receiver's logs.",
        )
    updated = await work.rt.stripe.update_endpoint(work.api_key, endpoint.id, params)
    if stripe_disabled and updated.status == "enabled":
        gap_records.reenabled(work)
    fields = ", ".join(f"`{key}`" for key in sorted(params))
    work.event("EndpointUpdated", f"Updated {fields} of Stripe endpoint {endpoint.id}.")
    return updated


async def drop_duplicates(work: Pass, current_id: str) -> None:
    """Delete endpoints tagged with our uid that are neither current nor in a rotation."""
    assert work.rt.accounts is not None
    for endpoint in await work.rt.accounts.endpoints(work.api_key):
        if endpoint.uid == work.spec.uid and endpoint.id != current_id:
            logger.info("%s: deleting leftover endpoint %s", work.spec.webhook, endpoint.id)
            await work.rt.stripe.delete_endpoint(work.api_key, endpoint.id)
            work.event("OldEndpointDeleted", f"Deleted leftover Stripe endpoint {endpoint.id}.")
