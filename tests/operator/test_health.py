"""The operator's probes mean different things: liveness fails only when kopf has stopped;
readiness also needs kopf started and an API server that answers (checked at most once per
`fresh_for` seconds, on an injected clock)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from stripe_webhook_operator.health import Health
from tests.operator.conftest import Scene


class ApiServer:
    """Stands in for the call to the API server: answers, fails, or hangs, and counts."""

    def __init__(self) -> None:
        self.mode = "answer"
        self.calls = 0

    async def __call__(self) -> object:
        self.calls += 1
        if self.mode == "fail":
            raise ConnectionError("refused")
        if self.mode == "hang":
            await asyncio.sleep(3600)
        return {"major": "1"}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def health(api: ApiServer, clock: Clock) -> tuple[Health, asyncio.Future[None]]:
    task: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    started = asyncio.Event()
    started.set()
    return Health(started, task, api, clock=clock, fresh_for=10.0, timeout=0.05), task


async def test_an_unreachable_api_server_makes_it_unready_but_still_alive() -> None:
    api, clock = ApiServer(), Clock()
    probes, _ = health(api, clock)
    assert (await probes.ready()).ok
    api.mode = "fail"
    clock.now += 11
    verdict = await probes.ready()
    assert not verdict.ok
    assert "API server" in verdict.status
    assert probes.live().ok
    api.mode = "hang"
    assert not (await probes.ready()).ok  # the timeout ends the wait
    assert probes.live().ok


async def test_a_recent_answer_spares_asking_again() -> None:
    api, clock = ApiServer(), Clock()
    probes, _ = health(api, clock)
    for _ in range(3):
        assert (await probes.ready()).ok
        clock.now += 3
    assert api.calls == 1
    clock.now += 2  # 11 s after the answer
    assert (await probes.ready()).ok
    assert api.calls == 2


async def test_a_stopped_operator_is_neither_alive_nor_ready() -> None:
    api, clock = ApiServer(), Clock()
    probes, task = health(api, clock)
    task.set_result(None)
    assert not probes.live().ok
    assert not (await probes.ready()).ok
    assert not probes.started_and_running().ok
    assert api.calls == 0


async def test_a_starting_operator_is_alive_but_not_ready() -> None:
    api, clock = ApiServer(), Clock()
    probes, _ = health(api, clock)
    probes.started.clear()
    assert probes.live().ok
    verdict = await probes.ready()
    assert not verdict.ok
    assert "starting" in verdict.status
    assert not probes.started_and_running().ok


@pytest.mark.integration
def test_a_running_operator_answers_each_probe_on_its_metrics_port(scene: Scene) -> None:
    operator = scene.start_operator()
    base = f"http://127.0.0.1:{operator.metrics_port}"
    for path in ("/livez", "/readyz", "/healthz"):
        answer = httpx.get(base + path, timeout=5)
        assert answer.status_code == 200, (path, answer.text)
        assert answer.json() == {"status": "ok"}
