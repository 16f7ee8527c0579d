"""Handing over from the old endpoint to the new: the readiness handshake with the receiver
(`Propagating`), the enable (`Enabling`) and the end of the overlap. Each function carries out
one step that rotation.next_step chose."""

from __future__ import annotations

import dataclasses

from stripe_webhook_operator import constants as c
from stripe_webhook_operator import metrics, receiver_probe
from stripe_webhook_operator.passes import Pass
from stripe_webhook_operator.rotation_steps import (
    EnableEndpoint,
    FinishOverlap,
    Observed,
    WaitForReceiver,
)


async def probe(work: Pass, seen: Observed) -> Observed:
    """Ask every receiver replica whether it lists the Secret's signing secret."""
    settings = work.rt.settings
    keys, _ = await work.read_keys()
    assert keys is not None
    assert settings.receiver_url is not None
    result = await receiver_probe.probe(
        work.rt.http,
        work.rt.kube,
        settings.receiver_url,
        settings.receiver_service,
        f"{work.spec.namespace}/{work.spec.name}",
        keys.signing.fingerprint(),
    )
    return dataclasses.replace(seen, probe=result)


async def wait_for_receiver(work: Pass, step: WaitForReceiver) -> float:
    """Say what the receiver answered, and come back after the propagation interval."""
    await work.save(step.patch.status, step.patch.conditions)
    return work.rt.settings.propagation_interval


async def enable(work: Pass, step: EnableEndpoint, seen: Observed) -> Observed:
    """Enable the new endpoint and record its id on the resource."""
    endpoint = await work.rt.stripe.update_endpoint(
        work.api_key, step.endpoint_id, {"disabled": step.disabled}
    )
    await work.annotate(
        {c.ANNOTATION_ENDPOINT_ID: step.endpoint_id, c.ANNOTATION_PENDING_IDEMPOTENCY_KEY: None}
    )
    work.known_endpoint = endpoint
    metrics.record_endpoint_status(work.spec.uid, endpoint.status)
    return dataclasses.replace(seen, enabled=endpoint)


async def finish_overlap(work: Pass, step: FinishOverlap) -> None:
    """Delete the old endpoint, drop the previous secret, complete the rotation."""
    if step.delete is not None:
        await work.rt.stripe.delete_endpoint(work.api_key, step.delete)
        work.event("OldEndpointDeleted", f"Deleted the previous Stripe endpoint {step.delete}.")
    keys, _ = await work.read_keys()
    if step.drop_previous and keys is not None:
        await work.write_keys(dataclasses.replace(keys, previous=None), step.livemode, None)
    await work.record(step.then)
