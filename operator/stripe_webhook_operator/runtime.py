"""When each StripeWebhook is reconciled: the runtime every pass shares, what wakes a
webhook's loop early, and the loop itself (one pass at a time per webhook, and at most
`--max-passes` passes at once across all of them).

The bound is for memory: a pass holds the bodies it read while it waits for the Stripe rate
limit, so a thousand new webhooks passing at once would hold a thousand of each. Beyond the
bound a webhook's loop waits for a turn before its pass reads anything; what the others hold
is their coroutine frame and kopf's daemon state, nothing of the pass.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

from stripe_webhook_operator import metrics, receiver_pods
from stripe_webhook_operator.accounts import AccountCache
from stripe_webhook_operator.exceptions import OperatorError
from stripe_webhook_operator.kube import Kube
from stripe_webhook_operator.live_webhooks import LiveWebhooks
from stripe_webhook_operator.receiver_entries import ReceiverEntries
from stripe_webhook_operator.secret_value import SecretValue
from stripe_webhook_operator.settings import Settings
from stripe_webhook_operator.stripe_api import StripeGateway
from stripe_webhook_operator.times import Clock, utc_now

if TYPE_CHECKING:
    from stripe_webhook_operator.recovery import Recoveries

logger = logging.getLogger(__name__)

# The wait after a pass that failed on Stripe's or the API server's side.
UNAVAILABLE_RETRY = 15.0

# One pass over one webhook (reconcile.reconcile): returns the seconds until the next one.
PassFunction = Callable[["Runtime", str, str, bool], Awaitable[float]]


@dataclass
class Wakeup:
    """Why a webhook's loop should run again at once: a change of the resource, or of a
    Secret (by namespace/name, to a resourceVersion)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    changed: bool = False
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)

    def set(self, secret: tuple[str, str] | None = None, version: str = "") -> None:
        if secret is None:
            self.changed = True
        else:
            self.secrets[secret] = version
        self.event.set()

    def clear(self) -> None:
        self.changed = False
        self.secrets.clear()
        self.event.clear()

    def drop_seen(self, seen: Mapping[tuple[str, str], str]) -> None:
        """Forget Secret changes whose version a pass read or wrote since they came."""
        for secret, version in list(self.secrets.items()):
            if seen.get(secret) == version:
                del self.secrets[secret]
        if self.event.is_set() and not self.changed and not self.secrets:
            self.event.clear()


@dataclass
class Runtime:
    """What every reconcile needs; built once at start (cli.py) and passed explicitly."""

    settings: Settings
    kube: Kube
    stripe: StripeGateway
    http: httpx.AsyncClient
    cluster_id: str
    accounts: AccountCache | None = None
    receiver: ReceiverEntries | None = None
    # The recovery loops, one per account (None: recovery off or no receiver configured).
    recovery: Recoveries | None = None
    clock: Clock = utc_now
    wakeups: dict[tuple[str, str], Wakeup] = field(default_factory=dict)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    # The resourceVersion of each Secret (namespace, name) a webhook's passes last read or
    # wrote, by webhook: the watch event of a version a pass already saw (its own write, above
    # all) needs no further pass.
    secrets_seen: dict[tuple[str, str], dict[tuple[str, str], str]] = field(default_factory=dict)
    # The turns of passes doing work at once (settings.pass_limit of them).
    pass_turns: asyncio.Semaphore = field(init=False)
    # The webhooks that exist, one list shared by the orphan sweeps that ask together.
    live_webhooks: LiveWebhooks = field(init=False)

    def __post_init__(self) -> None:
        self.pass_turns = asyncio.Semaphore(self.settings.pass_limit)
        self.live_webhooks = LiveWebhooks(lambda: self.kube.list_webhooks(self.settings.namespaces))
        if self.receiver is None:
            service = self.settings.receiver_service
            on_written = None
            if service is not None and self.settings.receiver_pod_nudge:
                on_written = functools.partial(receiver_pods.nudge, self.kube, *service)
            self.receiver = ReceiverEntries(
                self.kube,
                self.settings.receiver_namespace,
                self.settings.receiver_secret_name,
                ttl=self.settings.drift_interval * 0.8,
                on_written=on_written,
            )

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        """Return the lock that keeps one webhook's passes from overlapping."""
        return self.locks.setdefault((namespace, name), asyncio.Lock())

    def wakeup(self, namespace: str, name: str) -> Wakeup:
        """Return what wakes a webhook's loop for an immediate, fresh pass."""
        return self.wakeups.setdefault((namespace, name), Wakeup())

    def wake(
        self, namespace: str, name: str, secret: tuple[str, str] | None = None, version: str = ""
    ) -> None:
        """Ask for an immediate pass over one webhook; with `secret`, because that Secret
        changed to `version` (no pass is needed if the running one reads that version)."""
        self.wakeup(namespace, name).set(secret, version)

    def drift_delay(self, api_key: SecretValue | None = None) -> float:
        """Return the pause before the next drift check, jittered.

        Counted from the account's last endpoint list when there is one, so that the webhooks
        of an account come due together and one list serves them all; counted from each
        webhook's own pass, they would drift apart and the list would expire between them."""
        jitter = self.settings.drift_jitter
        delay = self.settings.drift_interval + random.uniform(0, jitter)
        if self.accounts is None or api_key is None:
            return delay
        age = self.accounts.age(api_key)
        return delay if age is None else max(delay - age, 0.0)

    def saw_secret(self, webhook: tuple[str, str], secret: Mapping[str, Any] | None) -> None:
        """Remember the version of a Secret that a pass of `webhook` read or wrote."""
        metadata = (secret or {}).get("metadata") or {}
        if metadata.get("resourceVersion"):
            seen = self.secrets_seen.setdefault(webhook, {})
            seen[(str(metadata.get("namespace")), str(metadata.get("name")))] = str(
                metadata["resourceVersion"]
            )

    def has_seen(self, webhook: tuple[str, str], secret: tuple[str, str], version: str) -> bool:
        """Return whether a pass of `webhook` already read or wrote this Secret version."""
        return self.secrets_seen.get(webhook, {}).get(secret) == version


async def run_loop(
    rt: Runtime, namespace: str, name: str, stopped: Any, reconcile: PassFunction
) -> None:
    """Reconcile one webhook until `stopped`: at once, then after each returned delay, or
    sooner when something wakes it (a fresh pass, rather than one from the account cache).

    The first pass reads the account cache too: after a restart, one list per account checks
    every webhook of it, where fresh passes would read each endpoint on its own."""
    metrics.WEBHOOKS.inc()
    try:
        await _loop(rt, namespace, name, stopped, reconcile)
    finally:
        # Another replica may carry on with this webhook: a step left here would look stuck.
        metrics.WEBHOOKS.dec()
        metrics.record_rotation_step(f"{namespace}/{name}", None, rt.clock().timestamp())
        rt.secrets_seen.pop((namespace, name), None)
        if rt.recovery is not None:
            rt.recovery.forget((namespace, name))


async def _loop(
    rt: Runtime, namespace: str, name: str, stopped: Any, reconcile: PassFunction
) -> None:
    wakeup = rt.wakeup(namespace, name)
    key = (namespace, name)
    fresh = False
    while not stopped:
        wakeup.clear()
        # The webhook's lock first: a loop waiting for a turn holds no turn another could use.
        async with rt.lock(namespace, name), rt.pass_turns:
            try:
                delay = await reconcile(rt, namespace, name, fresh)
            except (OperatorError, httpx.HTTPError) as exc:
                logger.warning(
                    "%s/%s: pass failed (%s): %s", namespace, name, type(exc).__name__, exc
                )
                delay = UNAVAILABLE_RETRY
        # The watch events of Secrets this pass read or wrote (its own writes, above all) may
        # come while it runs: they need no second pass.
        wakeup.drop_seen(rt.secrets_seen.get(key, {}))
        waiter = asyncio.ensure_future(wakeup.event.wait())
        stopper = asyncio.ensure_future(stopped.wait())
        done, pending = await asyncio.wait(
            {waiter, stopper}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        fresh = waiter in done
