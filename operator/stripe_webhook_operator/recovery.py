"""Recovery: the events a webhook's endpoint missed, listed from Stripe's Events API and
delivered to the receiver as Stripe would have delivered them.

One loop per Stripe account (not per webhook) wakes every `--recovery-interval`, or at once
when a pass closes a gap or records a request (gap_records.py); the posting of one event and
the reading of its answer are redelivery.py's. Each round:

1. scans the account's events that some endpoint has not been delivered (`delivery_success=
   false`) since the last scan, and records a `DeliveryFailed` gap in each webhook that wants
   their types;
2. moves what is older than Stripe's retention out of the gaps, into `lost` (condition
   `Recovered=False BeyondRetention`, a Warning Event, a counter);
3. lists, once for all the account's webhooks, the events of their enabled types created in
   the interval that covers every gap due, through the gateway (the one rate limiter);
4. for each webhook, under its lock (its passes write the same status), posts each event of
   each due gap to `<receiver>/webhooks/{ns}/{name}` signed with the webhook's current secret,
   in `--recovery-lanes` lanes side by side, each subscription's events in one lane, oldest
   first. A gap closes when every event in it got a definite answer (2xx, or 422
   `receipt_not_found`: the receiver stored it for replay); else it resumes at the first event
   without one after a backoff (`RetryingGap`).

The receiver's dedupe by event id makes a redelivery of an event it has a no-op, and its
ordering by the subscription's own timestamps keeps an older event from overwriting newer
state; delivering oldest first keeps that the rare case.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING, Any, Final

import httpx

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import constants as c
from stripe_webhook_operator import gaps, manifests, metrics, redelivery
from stripe_webhook_operator.accounts import AccountCache
from stripe_webhook_operator.exceptions import OperatorError
from stripe_webhook_operator.gaps import Gap
from stripe_webhook_operator.kube import post_event
from stripe_webhook_operator.redelivery import (
    Answer,
    covered,
    created_at,
    events_in,
    listing_window,
)
from stripe_webhook_operator.secret_value import SecretValue
from stripe_webhook_operator.times import parse_timestamp, rfc3339

if TYPE_CHECKING:
    from stripe_webhook_operator.runtime import Runtime

logger = logging.getLogger(__name__)

STATUS_KEY: Final = c.STATUS_RECOVERY
# Events this recent may still be on their way from Stripe: the next scan looks at them.
SCAN_LAG: Final = timedelta(seconds=5)
# The wait after a round that failed on Stripe's or the API server's side.
ROUND_RETRY: Final = 15.0
# A round begins this long after it was asked for, so that the webhooks of an account that
# ask together (an operator's start, one request for several) share its listing.
GATHER: Final = 1.0

WebhookKey = tuple[str, str]


@dataclass
class _Webhook:
    key: WebhookKey
    body: dict[str, Any]

    @property
    def recovery(self) -> dict[str, Any]:
        return dict((self.body.get("status") or {}).get(STATUS_KEY) or {})

    @property
    def types(self) -> tuple[str, ...]:
        events = (self.body.get("spec") or {}).get("enabledEvents")
        return tuple(events or c.DEFAULT_ENABLED_EVENTS)

    @property
    def created(self) -> datetime:
        stamp = None
        with contextlib.suppress(ValueError):
            stamp = parse_timestamp(self.body["metadata"].get("creationTimestamp"))
        return stamp or datetime.fromtimestamp(0, UTC)


@dataclass
class _Account:
    api_key: SecretValue
    webhooks: set[WebhookKey] = field(default_factory=set)
    wakeup: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None
    scanned_until: datetime | None = None


class Recoveries:
    """The recovery loops of every account whose webhooks this replica handles."""

    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self._accounts: dict[str, _Account] = {}
        self._account_of: dict[WebhookKey, str] = {}
        self._seen: dict[WebhookKey, datetime] = {}
        self._wake_after: set[WebhookKey] = set()

    # what passes tell it ------------------------------------------------------------------

    def register(self, key: WebhookKey, api_key: SecretValue) -> None:
        """Make sure the account of `api_key` has a loop that serves webhook `key`."""
        digest = AccountCache.account_key(api_key)
        previous = self._account_of.get(key)
        if previous == digest:
            return
        if previous is not None:
            self.forget(key)
        account = self._accounts.setdefault(digest, _Account(api_key))
        account.webhooks.add(key)
        self._account_of[key] = digest
        if account.task is None:
            account.task = asyncio.create_task(self._loop(account), name=f"recovery-{digest[:8]}")

    def forget(self, key: WebhookKey) -> None:
        """Stop serving webhook `key` (this replica no longer handles it)."""
        self._seen.pop(key, None)
        self._wake_after.discard(key)
        metrics.forget_gaps(*key)
        digest = self._account_of.pop(key, None)
        account = self._accounts.get(digest or "")
        if account is None:
            return
        account.webhooks.discard(key)
        if not account.webhooks:
            del self._accounts[digest or ""]
            if account.task is not None:
                account.task.cancel()

    def wake_after_pass(self, key: WebhookKey) -> None:
        """Have the round of webhook `key`'s account run once its pass has ended (a round
        begun before would read the status the pass has not written yet)."""
        self._wake_after.add(key)

    def pass_ended(self, key: WebhookKey) -> None:
        """When a pass over webhook `key` ends: run the round it asked for."""
        if key in self._wake_after:
            self._wake_after.discard(key)
            account = self._accounts.get(self._account_of.get(key, ""))
            if account is not None:
                account.wakeup.set()

    def saw_delivering(self, key: WebhookKey, moment: datetime) -> None:
        """Remember that webhook `key`'s endpoint delivered at `moment`."""
        self._seen[key] = moment

    def seen(self, key: WebhookKey) -> datetime | None:
        """Return when webhook `key`'s endpoint was last seen delivering by this process."""
        return self._seen.get(key)

    async def stop(self) -> None:
        """Cancel every loop."""
        tasks = [a.task for a in self._accounts.values() if a.task is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._accounts.clear()
        self._account_of.clear()

    # the loop -----------------------------------------------------------------------------

    async def _loop(self, account: _Account) -> None:
        delay = 0.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(account.wakeup.wait(), timeout=delay)
            await asyncio.sleep(GATHER)
            account.wakeup.clear()
            try:
                delay = await self.round(account)
            except (OperatorError, httpx.HTTPError) as exc:
                logger.warning("recovery round failed (%s): %s", type(exc).__name__, exc)
                delay = ROUND_RETRY
            except Exception:
                # A bug must not end the account's recovery for good: logged, tried again.
                logger.exception("recovery round failed")
                delay = ROUND_RETRY

    async def round(self, account: _Account) -> float:
        """Scan, cut what is beyond retention, list and redeliver, for one account; return the
        seconds until the next round."""
        rt = self.rt
        webhooks = await self._read(account)
        if not webhooks:
            return rt.settings.recovery_interval
        if await self._scan(account, webhooks):
            webhooks = await self._read(account)
        cut = [await self._cut_retention(webhook) for webhook in webhooks]
        if any(cut):
            webhooks = await self._read(account)
        now = rt.clock()
        due = {w.key: [g for g in gaps.read_gaps(w.recovery) if g.due(now)] for w in webhooks}
        window = listing_window(g for found in due.values() for g in found)
        if window is not None:
            types = sorted({t for w in webhooks if due[w.key] for t in w.types})
            events = await rt.stripe.list_events(account.api_key, types, *window)
            for webhook in webhooks:
                if due[webhook.key]:
                    await self._redeliver(webhook.key, events, window, types)
        return self._next_round(await self._read(account))

    def _next_round(self, webhooks: Sequence[_Webhook]) -> float:
        """The recovery interval, or sooner when a gap's next attempt comes first."""
        now = self.rt.clock()
        delay = self.rt.settings.recovery_interval
        for webhook in webhooks:
            for gap in gaps.read_gaps(webhook.recovery):
                if gap.closed and gap.next_attempt is not None:
                    delay = min(delay, max((gap.next_attempt - now).total_seconds(), 0.0) + 0.1)
        return delay

    async def _read(self, account: _Account) -> list[_Webhook]:
        found = []
        for key in sorted(account.webhooks):
            body = await self.rt.kube.get_webhook(*key)
            if body is not None and not body["metadata"].get("deletionTimestamp"):
                found.append(_Webhook(key, body))
        return found

    # 1. failed deliveries -------------------------------------------------------------------

    async def _scan(self, account: _Account, webhooks: Sequence[_Webhook]) -> bool:
        """Record a `DeliveryFailed` gap for the events delivered to some endpoint without
        success since the last scan (after a restart: since the oldest durable stamp); return
        whether any was recorded."""
        rt = self.rt
        now = rt.clock()
        since = account.scanned_until or min(
            gaps.scanned_until(w.recovery) or w.created for w in webhooks
        )
        until = now - SCAN_LAG
        if until <= since:
            return False
        types = sorted({t for w in webhooks for t in w.types})
        failed = await rt.stripe.list_events(
            account.api_key,
            types,
            math.floor(since.timestamp()),
            math.floor(until.timestamp()),
            delivery_success=False,
        )
        account.scanned_until = until
        recorded = False
        for webhook in webhooks:
            mine = [created_at(e) for e in failed if e.get("type") in webhook.types]
            mine = [moment for moment in mine if moment >= webhook.created]
            if mine or gaps.checkpoint_due(webhook.recovery, now, gaps.SCANNED_UNTIL):
                await self._update(webhook.key, partial(gaps.scanned, moments=mine, until=until))
                recorded = recorded or bool(mine)
        return recorded

    # 2. retention -----------------------------------------------------------------------------

    async def _cut_retention(self, webhook: _Webhook) -> bool:
        """Move what Stripe no longer keeps out of the webhook's gaps, and say so; return
        whether anything was."""
        retention = timedelta(seconds=self.rt.settings.event_retention)
        _, lost = gaps.split_retention(gaps.read_gaps(webhook.recovery), self.rt.clock(), retention)
        if not lost:
            return False

        def cut(recovery: Mapping[str, Any]) -> dict[str, Any]:
            kept, lost_now = gaps.split_retention(
                gaps.read_gaps(recovery), self.rt.clock(), retention
            )
            return gaps.with_lost(gaps.with_gaps(recovery, kept), lost_now)

        body = await self._update(webhook.key, cut)
        if body is None:
            return False
        for item in lost:
            message = (
                f"Events created from {rfc3339(item.start)} to {rfc3339(item.end)} are older "
                "than Stripe's retention and cannot be recovered; reconcile those subscribers "
                "by hand."
            )
            logger.warning("%s/%s: %s", *webhook.key, message)
            post_event(body, warning=True, reason=gaps.BEYOND_RETENTION, message=message)
            metrics.BEYOND_RETENTION.labels(namespace=webhook.key[0], webhook=webhook.key[1]).inc()
        return True

    # 3 and 4. listing and redelivery ---------------------------------------------------------

    async def _redeliver(
        self,
        key: WebhookKey,
        events: Sequence[Mapping[str, Any]],
        window: tuple[int, int],
        listed_types: Sequence[str],
    ) -> None:
        rt = self.rt
        async with rt.lock(*key):
            body = await rt.kube.get_webhook(*key)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return
            webhook = _Webhook(key, body)
            if not set(webhook.types) <= set(listed_types):
                return  # its types changed since the listing: the next round lists them
            secret_name = (body.get("status") or {}).get("secretName") or (
                (body.get("spec") or {}).get("secretName") or f"{key[1]}{c.SECRET_NAME_SUFFIX}"
            )
            secret = await rt.kube.get_secret(key[0], secret_name)
            keys = manifests.read_signing_keys((secret or {}).get("data"))
            if keys is None:
                return
            now = rt.clock()
            recovered = 0
            errors: list[str] = []
            result: list[Gap] = []
            for gap in gaps.read_gaps(webhook.recovery):
                if not gap.due(now) or not covered(gap, window):
                    result.append(gap)
                    continue
                missed = events_in(gap, events, webhook.types)
                answered, first_unanswered, error = await self._deliver_all(key, missed, keys)
                recovered += answered
                if first_unanswered is None:
                    continue  # closed
                errors.append(error)
                base = timedelta(seconds=rt.settings.recovery_retry)
                result.append(
                    gaps.failed(gap, first_unanswered, rt.clock(), base, len(missed), answered)
                )
            recovery = gaps.with_gaps(webhook.recovery, result)
            recovery["eventsRecovered"] = int(recovery.get("eventsRecovered") or 0) + recovered
            recovery["lastRecoveryTime"] = rfc3339(rt.clock())
            recovery["lastError"] = errors[0] if errors else None
            await self._write(key, body, recovery)
        if recovered:
            metrics.EVENTS_RECOVERED.labels(namespace=key[0], webhook=key[1]).inc(recovered)
            logger.info("%s/%s: %d event(s) recovered", *key, recovered)

    async def _deliver_all(
        self, key: WebhookKey, events: Sequence[Mapping[str, Any]], keys: manifests.SigningKeys
    ) -> tuple[int, datetime | None, str]:
        """Post `events` in `--recovery-lanes` lanes side by side (one subscription's events
        in one lane, in order); return how many got a definite answer, the time of the oldest
        that did not (None: all did), and why it did not. A receiver that cannot take more
        stops every lane."""
        stop = asyncio.Event()

        async def lane(queue: Sequence[Mapping[str, Any]]) -> tuple[int, datetime | None, str]:
            answered = 0
            for event in queue:
                if stop.is_set():  # stopped by the lane whose answer says why
                    return answered, created_at(event), ""
                answer = await self.deliver(key, event, keys.signing)
                if answer.definite:
                    answered += 1
                    continue
                if answer.unavailable:
                    stop.set()
                # The lane goes no further: the gap resumes from this event, so what came
                # after it in the lane would only be sent again.
                return answered, created_at(event), answer.detail
            return answered, None, ""

        results = await asyncio.gather(
            *(lane(queue) for queue in redelivery.lanes(events, self.rt.settings.recovery_lanes))
        )
        answered = sum(result[0] for result in results)
        failed = [(moment, detail) for _, moment, detail in results if moment is not None]
        if not failed:
            return answered, None, ""
        first = min(moment for moment, _ in failed)
        return answered, first, min((moment, detail) for moment, detail in failed if detail)[1]

    async def deliver(
        self, key: WebhookKey, event: Mapping[str, Any], secret: SecretValue
    ) -> Answer:
        """Post one event to the receiver's webhook path, signed as Stripe signs it."""
        assert self.rt.settings.receiver_url is not None
        return await redelivery.post(
            self.rt.http, self.rt.settings.receiver_url, key, event, secret, self.rt.clock()
        )

    # status ---------------------------------------------------------------------------------

    async def _update(self, key: WebhookKey, change: Any) -> dict[str, Any] | None:
        """Apply `change` (recovery -> recovery) to the webhook's fresh status, under its lock;
        return the body it was applied to."""
        async with self.rt.lock(*key):
            body = await self.rt.kube.get_webhook(*key)
            if body is None or body["metadata"].get("deletionTimestamp"):
                return None
            recovery = (body.get("status") or {}).get(STATUS_KEY) or {}
            await self._write(key, body, change(recovery))
            return body

    async def _write(
        self, key: WebhookKey, body: Mapping[str, Any], recovery: Mapping[str, Any]
    ) -> None:
        """Write `status.recovery` and the `Recovered` condition, and publish the gauges."""
        rt = self.rt
        now = rt.clock()
        status = body.get("status") or {}
        generation = int(body["metadata"].get("generation") or 0)
        conditions = cond.merge(
            status.get("conditions"), [gaps.condition(recovery, now)], generation, now
        )
        await rt.kube.patch_webhook_status(
            *key, {STATUS_KEY: dict(recovery), "conditions": conditions}
        )
        found = gaps.read_gaps(recovery)
        metrics.record_gaps(*key, len(found), gaps.oldest_age(found, now))
