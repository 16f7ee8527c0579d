"""What the operator's probes mean: liveness (the process can make progress) and readiness
(it is ready to work), two answers that fail for different reasons.

- Liveness (`/livez`) fails only when a restart would help: kopf's task has ended (the
  operator stopped for good) or the event loop is stuck (the probe then gets no answer at
  all). It never depends on the API server: restarting a pod cut off from it changes nothing.
- Readiness (`/readyz`) also needs kopf to have finished starting and the API server to have
  answered within the last `fresh_for` seconds (asked at most once per probe, with a short
  timeout). A replica that peering holds in standby is ready: it watches, and takes over at
  once when the leader goes. Making readiness depend on holding the lead would leave every
  standby unready, so a rolling update (which waits for new pods to become ready) and a
  PodDisruptionBudget (which counts ready pods) would stall behind the leader.
- `/healthz`, what the operator answered before (started and running), stays for tools that
  poll it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Answer:
    """One probe's verdict and the sentence that explains it."""

    ok: bool
    status: str


@dataclass
class Health:
    """The probes of one operator process."""

    started: asyncio.Event
    operator_task: asyncio.Future[None]
    # Any cheap authenticated call to the API server; an exception means it did not answer.
    ask_api_server: Callable[[], Awaitable[object]]
    clock: Callable[[], float] = time.monotonic
    fresh_for: float = 10.0
    timeout: float = 2.0
    _answered_at: float | None = field(default=None, init=False)

    def live(self) -> Answer:
        """When kopf's task still runs, the process can make progress."""
        if self.operator_task.done():
            return Answer(False, "The kopf operator has stopped; restart the process.")
        return Answer(True, "ok")

    def started_and_running(self) -> Answer:
        """When kopf has started and still runs (what `/healthz` has always answered)."""
        liveness = self.live()
        if not liveness.ok:
            return liveness
        if not self.started.is_set():
            return Answer(False, "The kopf operator is still starting.")
        return Answer(True, "ok")

    async def ready(self) -> Answer:
        """When the operator runs, has started, and the API server answers, it is ready."""
        running = self.started_and_running()
        if not running.ok:
            return running
        now = self.clock()
        if self._answered_at is not None and now - self._answered_at <= self.fresh_for:
            return Answer(True, "ok")
        try:
            await asyncio.wait_for(self.ask_api_server(), self.timeout)
        except Exception:  # any failure to answer, whatever raised it, means not ready
            return Answer(False, "The Kubernetes API server does not answer.")
        self._answered_at = now
        return Answer(True, "ok")
