"""Each account's clock: what Stripe's timestamps (`created`, periods, `ended_at`) read, and what
the 30-day retention of events is measured against.

It runs with the wall clock until a test sets it (`/_emulator/accounts/{acct}/clock`): then it
stands still at the time set, and moves only when told to advance. Per account, so that one
test's time travel leaves every other account (and test) of the shared emulator alone.
Deliveries are signed with the wall clock whatever this clock says: the receiver checks a
signature's time against its own clock, as it does for Stripe's.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Clock:
    """Whole seconds since the epoch; `frozen_at` set means the clock stands still there."""

    wall: Callable[[], float] = field(default=time.time, repr=False)
    frozen_at: int | None = None

    def now(self) -> int:
        """The account's current time, in whole seconds."""
        return self.frozen_at if self.frozen_at is not None else int(self.wall())

    def set(self, moment: int) -> None:
        """Stop the clock at `moment` (Unix seconds), earlier or later than now."""
        self.frozen_at = moment

    def advance(self, seconds: int) -> None:
        """Move the clock `seconds` forward (it stands still at the new time)."""
        self.frozen_at = self.now() + seconds

    def resume(self) -> None:
        """Run with the wall clock again."""
        self.frozen_at = None

    def render(self) -> dict[str, object]:
        """The clock as the control API shows it."""
        return {"now": self.now(), "frozen": self.frozen_at is not None}
