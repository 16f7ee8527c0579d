"""Recording recovery gaps where a reconcile pass sees them: a new endpoint created disabled
(until it is enabled), an endpoint Stripe disabled (until the operator re-enables it), one
deleted behind the operator's back (until its replacement is enabled), and an admin's recover
request. What to record is gaps.py's; this module puts it into the pass's status (staged, so
that the step's own status write makes it durable with it) and wakes the account's recovery.

The rotation state machine stays as it is: reconcile.py calls these around the steps it
carries out. Nothing is recorded when recovery is off or has no receiver to deliver to.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import constants as c
from stripe_webhook_operator import gaps, metrics
from stripe_webhook_operator import triggers as t
from stripe_webhook_operator.passes import Pass
from stripe_webhook_operator.rotation_steps import Begin
from stripe_webhook_operator.times import parse_timestamp, rfc3339

logger = logging.getLogger(__name__)

STATUS_KEY = c.STATUS_RECOVERY


def _recovery(work: Pass) -> Mapping[str, Any]:
    return work.status.get(STATUS_KEY) or {}


def _created(work: Pass) -> datetime:
    """When the StripeWebhook was created (now, if the API server did not say)."""
    try:
        stamp = parse_timestamp(work.body["metadata"].get("creationTimestamp"))
    except ValueError:
        stamp = None
    return stamp or work.rt.clock()


def _stage(work: Pass, recovery: Mapping[str, Any]) -> None:
    """Stage `status.recovery` and the `Recovered` condition it calls for."""
    work.stage({STATUS_KEY: dict(recovery)}, [gaps.condition(recovery, work.rt.clock())])


def _seen_delivering(work: Pass) -> datetime:
    remembered = work.rt.recovery.seen(work.key) if work.rt.recovery is not None else None
    return gaps.seen_delivering(_recovery(work), remembered, _created(work))


def _wake(work: Pass) -> None:
    """Have the account's recovery run once this pass has written what it staged."""
    if work.rt.recovery is not None:
        work.rt.recovery.wake_after_pass(work.key)


def began(work: Pass, step: Begin) -> None:
    """Before a new endpoint is created: its events wait from now (from the resource's
    creation for a new webhook) until it is enabled; a vanished endpoint's since it was last
    seen delivering."""
    if not work.rt.settings.recovers:
        return
    now = work.rt.clock()
    recovery: Mapping[str, Any] = _recovery(work)
    if step.forget is not None:
        recovery = gaps.open_gap(recovery, _seen_delivering(work), gaps.ENDPOINT_DELETED)
    start = _created(work) if step.trigger.reason == t.CREATED else now
    _stage(work, gaps.open_gap(recovery, min(start, now), gaps.NOT_YET_ENABLED))


def enabled(work: Pass) -> None:
    """After the new endpoint is enabled: its gap (and a deleted one's) ends now."""
    if not work.rt.settings.recovers:
        return
    closed = gaps.close_gaps(_recovery(work), gaps.UNTIL_ENABLED, work.rt.clock())
    if closed is not None:
        _stage(work, closed)
        _wake(work)


def disabled_by_stripe(work: Pass) -> None:
    """When Stripe reports the endpoint disabled: nothing reaches it from the last time it was
    seen delivering."""
    if not work.rt.settings.recovers or gaps.has_open(_recovery(work), gaps.DISABLED_BY_STRIPE):
        return
    _stage(work, gaps.open_gap(_recovery(work), _seen_delivering(work), gaps.DISABLED_BY_STRIPE))


def reenabled(work: Pass) -> None:
    """When the endpoint Stripe disabled is enabled again: its gap ends now."""
    if not work.rt.settings.recovers:
        return
    closed = gaps.close_gaps(_recovery(work), (gaps.DISABLED_BY_STRIPE,), work.rt.clock())
    if closed is not None:
        _stage(work, closed)
        _wake(work)


def delivering(work: Pass) -> None:
    """When a pass finds the endpoint enabled: remember it (durably at most once per
    checkpoint), and give the resource its `Recovered` condition if it has none yet."""
    rt = work.rt
    if not rt.settings.recovers or rt.recovery is None:
        return
    now = rt.clock()
    # The endpoint may come from the account's cached list, at most a drift interval old.
    seen = now - timedelta(seconds=rt.settings.drift_interval)
    rt.recovery.saw_delivering(work.key, seen)
    recovery = dict(_recovery(work))
    if gaps.checkpoint_due(recovery, now):
        recovery[gaps.CHECKED_AT] = rfc3339(seen)
        _stage(work, recovery)
    elif cond.find(work.status.get("conditions"), c.CONDITION_RECOVERED) is None:
        _stage(work, recovery)


async def requested(work: Pass) -> None:
    """When the recover annotation holds a request not handled yet: record the gap from its
    `since` to now (or say what to write instead)."""
    rt = work.rt
    request_id = work.annotations.get(c.ANNOTATION_RECOVER)
    recovery = _recovery(work)
    if not request_id or request_id == recovery.get("request") or not rt.settings.recovers:
        return
    now = rt.clock()
    try:
        since = gaps.parse_since(work.annotations.get(c.ANNOTATION_RECOVER_SINCE), now)
    except ValueError as exc:
        message = str(exc)
        previous = cond.find(work.status.get("conditions"), c.CONDITION_RECOVERED) or {}
        if previous.get("message") != message:
            work.event(gaps.INVALID_REQUEST, message, warning=True)
        await work.save({}, [gaps.invalid_request(message)])
        return
    logger.info("%s: recover request %s from %s", work.spec.webhook, request_id, since)
    work.event(
        "RecoveryRequested",
        f"Recovering the events created from {rfc3339(since)} to {rfc3339(now)}.",
    )
    _stage(work, gaps.request(recovery, request_id, since, now))
    await work.save({})
    _wake(work)


def publish(work: Pass) -> None:
    """After a pass: have the account's recovery serve the webhook (now, if the pass closed a
    gap or recorded a request), and publish the webhook's gaps as metrics."""
    rt = work.rt
    if not rt.settings.recovers or rt.recovery is None:
        return
    if work.api_key.reveal():
        rt.recovery.register(work.key, work.api_key)
        rt.recovery.pass_ended(work.key)
    found: Sequence[gaps.Gap] = gaps.read_gaps(_recovery(work))
    metrics.record_gaps(
        work.spec.namespace,
        work.spec.name,
        len(found),
        gaps.oldest_age(found, work.rt.clock()),
    )
