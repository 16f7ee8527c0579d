"""One reconcile pass over one StripeWebhook: read it afresh, then ask the rotation state
machine (rotation.py) for the next step and carry it out, again and again, until a step says
how long to wait; failures become conditions and Events.

Every decision is rotation.next_step's; this module only maps each step to the module that
carries it out: creation.py, handover.py, drift.py (deletion.py runs on delete instead); around
the steps that start and end a time without deliveries, gap_records.py records the gap.
"""

from __future__ import annotations

import dataclasses
import logging

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import (
    creation,
    drift,
    gap_records,
    handover,
    metrics,
    rotation,
    rotation_status,
)
from stripe_webhook_operator import rotation_steps as steps
from stripe_webhook_operator.exceptions import (
    ApiKeyMissing,
    EndpointLimitReached,
    KubernetesError,
    SecretConflict,
    StripeAuthenticationFailed,
    StripeRejected,
    StripeUnavailable,
)
from stripe_webhook_operator.kube import api_key_in
from stripe_webhook_operator.manifests import WebhookSpec
from stripe_webhook_operator.passes import Pass
from stripe_webhook_operator.rotation_steps import Observed
from stripe_webhook_operator.runtime import UNAVAILABLE_RETRY, Runtime

logger = logging.getLogger(__name__)

# At most this many state changes in one pass (a rotation from start to overlap takes five).
MAX_STEPS = 12


async def reconcile(rt: Runtime, namespace: str, name: str, fresh: bool) -> float:
    """When a StripeWebhook changes or its timer fires, bring Stripe and the Secrets in line
    with it; return the seconds until the next pass."""
    body = await rt.kube.get_webhook(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return rt.drift_delay()
    work = Pass(rt, body, fresh)
    migration = rotation_status.migration(work.status)
    if migration is not None:
        # Status as the 0.1 releases wrote it: rewritten by this pass's first status write.
        work.stage(*migration)
    try:
        delay = await _run(work)
    except ApiKeyMissing as exc:
        await work.fail(exc.reason, str(exc))
        delay = rt.drift_delay()
    except StripeAuthenticationFailed as exc:
        await work.fail(exc.reason, _api_key_message(work.spec, exc.message))
        delay = rt.drift_delay()
    except EndpointLimitReached as exc:
        await work.fail(
            exc.reason,
            f"Stripe refused a new endpoint: {exc.message}; delete an unused webhook endpoint "
            "of this Stripe account (16 in test mode) and the operator retries.",
        )
        delay = rt.drift_delay()
    except StripeRejected as exc:
        await work.fail(exc.reason, f"Stripe refused the request ({exc.status}): {exc.message}")
        delay = rt.drift_delay()
    except StripeUnavailable as exc:
        await work.fail(exc.reason, f"{exc.message}; the operator retries with backoff.")
        delay = UNAVAILABLE_RETRY
    except SecretConflict as exc:
        await work.fail(exc.reason, str(exc))
        delay = rt.drift_delay()
    except KubernetesError as exc:
        metrics.ERRORS.labels(reason=exc.reason).inc()
        logger.warning("%s: %s", work.spec.webhook, exc)
        delay = UNAVAILABLE_RETRY
    metrics.record_pass(
        work.spec.webhook, work.is_ready(), _rotation_step(work), rt.clock().timestamp()
    )
    gap_records.publish(work)
    return delay


def _rotation_step(work: Pass) -> str | None:
    """The rotation step the pass left the webhook in (None when no rotation runs)."""
    step = rotation_status.read(work.status, work.annotations).step
    return None if step == rotation_status.IDLE else step


def _api_key_message(spec: WebhookSpec, detail: str) -> str:
    return (
        f"{detail}; put a valid API key into Secret '{spec.api_key_secret}' under key "
        f"`{spec.api_key_key}`."
    )


def _observed(work: Pass) -> Observed:
    """Return what a pass knows before it looks at anything."""
    rt = work.rt
    return Observed(
        work.spec, work.annotations, rt.clock(), rt.settings.handshake_configured, rt.cluster_id
    )


async def _run(work: Pass) -> float:
    spec = work.spec
    if not spec.url:
        await work.fail(
            cond.URL_MISSING,
            "`spec.url` is not set and the operator has no `--public-base-url`; set one of them.",
        )
        return work.rt.drift_delay()
    key_secret = await work.rt.kube.get_secret(spec.namespace, spec.api_key_secret)
    work.rt.saw_secret(work.key, key_secret)
    work.api_key = api_key_in(key_secret, spec.namespace, spec.api_key_secret, spec.api_key_key)
    await gap_records.requested(work)
    seen = _observed(work)
    changes = 0
    while changes < MAX_STEPS:
        state = rotation_status.read(work.status, work.annotations)
        step = rotation.next_step(state, dataclasses.replace(seen, now=work.rt.clock()))
        result = await _carry_out(work, step, seen)
        if isinstance(result, Observed):
            seen = result
        elif result is not None:
            return result
        else:
            # A new state: what was seen for the old one does not count (the Secret and the
            # endpoint read in this pass are kept by the pass itself).
            changes += 1
            seen = _observed(work)
    return work.rt.settings.propagation_interval


async def _carry_out(work: Pass, step: steps.Step, seen: Observed) -> Observed | float | None:
    """Do `step`; return what it observed, the wait it ends the pass with, or None once it
    wrote the next state."""
    match step:
        case steps.ReadSecret():
            keys, _ = await work.read_keys()
            return dataclasses.replace(seen, keys=keys)
        case steps.LookUpEndpoint(endpoint_id):
            return dataclasses.replace(seen, endpoint=await work.current_endpoint(endpoint_id))
        case steps.ListOwnEndpoints():
            return dataclasses.replace(seen, own=tuple(await work.own_endpoints()))
        case steps.CreateEndpoint():
            return await creation.create_endpoint(work, step, seen)
        case steps.DisableEndpoint():
            return await creation.disable_endpoint(work, step, seen)
        case steps.WriteSecrets():
            await creation.write_secrets(work, step, seen)
        case steps.Adopt():
            await creation.adopt(work, step)
        case steps.Begin():
            gap_records.began(work, step)
            await creation.begin(work, step)
        case steps.Probe():
            return await handover.probe(work, seen)
        case steps.WaitForReceiver():
            return await handover.wait_for_receiver(work, step)
        case steps.EnableEndpoint():
            enabled = await handover.enable(work, step, seen)
            gap_records.enabled(work)
            return enabled
        case steps.FinishOverlap():
            await handover.finish_overlap(work, step)
        case steps.Record():
            await work.record(step)
        case steps.Settle():
            return await drift.settle(work, step)
    return None
