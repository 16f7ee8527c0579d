"""The bound on reconcile passes at once (`--max-passes`): runtime.run_loop lets at most that
many passes of different webhooks work together, and the others start as turns come free."""

from __future__ import annotations

import asyncio

from stripe_webhook_operator.runtime import Runtime, run_loop
from stripe_webhook_operator.settings import Settings
from tests.operator.conftest import bare_runtime

WEBHOOKS = 10
LIMIT = 3


class Stopper(asyncio.Event):
    """Stands in for kopf's DaemonStopped: true once set."""

    def __bool__(self) -> bool:
        return self.is_set()


class GatedPasses:
    """A pass function that counts the passes in flight and holds each until released."""

    def __init__(self, stoppers: dict[str, Stopper]) -> None:
        self.stoppers = stoppers
        self.gate = asyncio.Event()
        self.in_flight = 0
        self.most = 0
        self.started: list[str] = []

    async def __call__(self, rt: Runtime, namespace: str, name: str, fresh: bool) -> float:
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        self.started.append(name)
        await self.gate.wait()
        self.in_flight -= 1
        self.stoppers[name].set()  # one pass per webhook, then its loop ends
        return 3600.0


async def let_run() -> None:
    """Give every task that can go on the chance to, until none can."""
    for _ in range(200):
        await asyncio.sleep(0)


async def test_at_most_max_passes_run_at_once_and_every_webhook_gets_its_pass() -> None:
    rt = bare_runtime(Settings(max_passes=LIMIT))
    stoppers = {f"w{i}": Stopper() for i in range(WEBHOOKS)}
    passes = GatedPasses(stoppers)
    loops = [
        asyncio.create_task(run_loop(rt, "billing", name, stopper, passes))
        for name, stopper in stoppers.items()
    ]
    await let_run()
    # Every loop asked for its pass; only LIMIT of them got a turn.
    assert passes.in_flight == LIMIT
    assert len(passes.started) == LIMIT
    passes.gate.set()
    await asyncio.wait_for(asyncio.gather(*loops), timeout=30)
    assert sorted(passes.started) == sorted(stoppers)
    assert passes.most == LIMIT


async def test_a_loop_waiting_for_its_webhooks_lock_holds_no_turn() -> None:
    # One turn; webhook a is locked (a deletion running, say) when both loops start: a's loop
    # waits for the lock without a turn, so b's pass takes the turn and runs.
    rt = bare_runtime(Settings(max_passes=1))
    stoppers = {"a": Stopper(), "b": Stopper()}
    passes = GatedPasses(stoppers)
    async with rt.lock("billing", "a"):
        loop_a = asyncio.create_task(run_loop(rt, "billing", "a", stoppers["a"], passes))
        loop_b = asyncio.create_task(run_loop(rt, "billing", "b", stoppers["b"], passes))
        await let_run()
        assert passes.started == ["b"]
    await let_run()
    assert passes.started == ["b"]  # a has its lock now and waits for b's turn
    passes.gate.set()
    await asyncio.wait_for(asyncio.gather(loop_a, loop_b), timeout=30)
    assert passes.started == ["b", "a"]
    assert passes.most == 1
