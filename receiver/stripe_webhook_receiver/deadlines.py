"""Time limits for reading request bodies, with one timer per event loop instead of one per read.

`asyncio.timeout` arms and disarms a timer for every read (under uvloop a libuv timer made
and closed each time, ~7 us of CPU per delivery here), although a read nearly always ends at
once: the server has usually received the whole body before the request starts. Here a read
in flight is a dict entry; one timer waits for the earliest deadline and, when it fires,
cancels the reads past theirs. The cancelled read turns that cancellation into TimeoutError
exactly as `asyncio.timeout` does (see `within`).
"""

from __future__ import annotations

import asyncio
import math
import weakref
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class Deadlines:
    """The reads in flight on one event loop and the one timer that ends the late ones."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._reads: dict[asyncio.Task[Any], float] = {}
        self._expired: set[asyncio.Task[Any]] = set()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf

    def start(self, task: asyncio.Task[Any], seconds: float) -> None:
        """Give `task` until `seconds` from now; past that it is cancelled."""
        deadline = self._loop.time() + seconds
        self._reads[task] = deadline
        if deadline < self._timer_at:
            self._arm(deadline)

    def end(self, task: asyncio.Task[Any]) -> bool:
        """Forget `task`'s deadline; return whether it had passed (and `task` was cancelled)."""
        if task in self._expired:
            self._expired.discard(task)
            return True
        del self._reads[task]
        return False

    def _arm(self, deadline: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = self._loop.call_at(deadline, self._expire)
        self._timer_at = deadline

    def _expire(self) -> None:
        self._timer, self._timer_at = None, math.inf
        now = self._loop.time()
        late = [task for task, deadline in self._reads.items() if deadline <= now]
        for task in late:
            del self._reads[task]
            self._expired.add(task)
            task.cancel()
        if self._reads:
            self._arm(min(self._reads.values()))


_BY_LOOP: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Deadlines] = (
    weakref.WeakKeyDictionary()
)


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """Await `awaitable`, raising TimeoutError if it takes longer than `seconds`.

    One `within` per task at a time (deadlines are kept by task); body reads never nest.

    Like `async with asyncio.timeout(seconds)`: a cancellation of our own becomes
    TimeoutError unless someone else also cancelled the task meanwhile, and one that
    arrives as the awaitable finishes is taken back (`uncancel`).
    """
    task = asyncio.current_task()
    assert task is not None, "within() runs inside a task"
    loop = task.get_loop()
    deadlines = _BY_LOOP.get(loop)
    if deadlines is None:
        deadlines = _BY_LOOP[loop] = Deadlines(loop)
    cancelling = task.cancelling()
    deadlines.start(task, seconds)
    try:
        result = await awaitable
    except asyncio.CancelledError:
        if deadlines.end(task) and task.uncancel() <= cancelling:
            raise TimeoutError from None
        raise
    except BaseException:
        if deadlines.end(task):
            task.uncancel()
        raise
    if deadlines.end(task):
        task.uncancel()
    return result
