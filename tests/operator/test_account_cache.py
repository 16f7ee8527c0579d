"""The per-account endpoint list: callers that ask together share one list call, a caller never
gets a list that began before it asked unless it accepts the cached one, and the age of the
cached list is what drift passes are counted from; the orphan sweeps that ask together share
one list of StripeWebhooks (live_webhooks.py)."""

from __future__ import annotations

import asyncio

from stripe_webhook_operator.accounts import AccountCache
from stripe_webhook_operator.live_webhooks import LiveWebhooks
from stripe_webhook_operator.manifests import StripeEndpoint
from stripe_webhook_operator.runtime import Wakeup
from stripe_webhook_operator.secret_value import SecretValue

KEY = SecretValue("sk_test_cache")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Account:
    """Lists endpoints slowly enough for callers to pile up, counting the calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.gate = asyncio.Event()

    async def list(self, _key: SecretValue) -> list[StripeEndpoint]:
        self.calls += 1
        await self.gate.wait()
        return [endpoint(f"we_{self.calls}")]


def endpoint(endpoint_id: str) -> StripeEndpoint:
    return StripeEndpoint(
        id=endpoint_id,
        url="https://hooks.example/x",
        status="enabled",
        enabled_events=("customer.subscription.updated",),
        description=None,
        metadata={},
        api_version=None,
        livemode=False,
    )


async def test_callers_waiting_for_a_running_list_share_the_next_one() -> None:
    account = Account()
    cache = AccountCache(account.list, ttl=60.0)
    first = asyncio.create_task(cache.current_endpoints(KEY))
    await asyncio.sleep(0)
    # These ask while the first list runs: that list began before they asked.
    later = [asyncio.create_task(cache.current_endpoints(KEY)) for _ in range(5)]
    await asyncio.sleep(0)
    account.gate.set()
    assert [e.id for e in await first] == ["we_1"]
    answers = [await task for task in later]
    assert {tuple(e.id for e in answer) for answer in answers} == {("we_2",)}
    assert account.calls == 2


async def test_cached_list_serves_drift_passes_until_it_expires() -> None:
    account = Account()
    account.gate.set()
    clock = Clock()
    cache = AccountCache(account.list, ttl=24.0, clock=clock)
    assert cache.age(KEY) is None
    await cache.endpoints(KEY)
    clock.now += 20.0
    assert cache.age(KEY) == 20.0
    await cache.endpoints(KEY)
    assert account.calls == 1
    clock.now += 5.0
    await cache.endpoints(KEY)
    assert account.calls == 2
    assert cache.age(KEY) == 0.0


async def test_wakeup_for_a_secret_version_the_pass_saw_is_dropped() -> None:
    wakeup = Wakeup()
    secret = ("ns", "shop-stripe-webhook")
    wakeup.set(secret, "41")
    wakeup.drop_seen({secret: "41"})
    assert not wakeup.event.is_set()
    wakeup.set(secret, "42")
    wakeup.drop_seen({secret: "41"})
    assert wakeup.event.is_set()
    wakeup.clear()
    wakeup.set()  # the resource itself changed
    wakeup.drop_seen({secret: "41"})
    assert wakeup.event.is_set()


class Webhooks:
    """Lists StripeWebhooks, held at a gate so that sweeps pile up, counting the calls."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.calls = 0
        self.gate = asyncio.Event()

    async def list(self) -> list[dict[str, object]]:
        self.calls += 1
        call = self.calls
        self.clock.now += 1.0  # a list takes time
        await self.gate.wait()
        return [{"metadata": {"uid": f"uid-{call}"}}]


async def test_sweeps_that_ask_together_share_one_list_of_webhooks_begun_after_they_asked() -> None:
    clock = Clock()
    webhooks = Webhooks(clock)
    live = LiveWebhooks(webhooks.list, clock=clock)
    first = asyncio.create_task(live.uids())
    await asyncio.sleep(0)  # the first list runs; the others ask while it does
    waiting = [asyncio.create_task(live.uids()) for _ in range(50)]
    await asyncio.sleep(0)
    webhooks.gate.set()
    assert await first == {"uid-1"}
    # A list that began before they asked could miss a webhook whose endpoint they saw: they
    # share the next one, and only that one.
    assert {frozenset(await task) for task in waiting} == {frozenset({"uid-2"})}
    assert webhooks.calls == live.lists == 2
    clock.now += 5.0
    assert await live.uids() == {"uid-3"}  # asked after every list began: a new one
