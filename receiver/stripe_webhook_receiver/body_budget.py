"""How many bytes of unfinished request bodies the receiver holds, across all requests.

The per-request limit (1 MiB) bounds one body, not a thousand of them: a thousand clients that
each send most of a large body and then stall would make the process hold a gigabyte until
their deadlines pass. Every chunk of a body that is still arriving is taken from one budget
and given back when the body is complete (or refused); a chunk the budget cannot cover ends
that request with 503 `overloaded`. A body that arrives whole in one read takes nothing:
its bytes are already in memory, and refusing it would free none of them, so the deliveries
Stripe sends (small, sent at once) are never refused because of slow clients.
"""

from __future__ import annotations


class BodyBudget:
    """A count of bytes held by bodies still arriving, against a fixed total."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.held = 0

    def take(self, size: int) -> bool:
        """When `size` more bytes fit within the total, count them held and return True."""
        if self.held + size > self.total:
            return False
        self.held += size
        return True

    def give_back(self, size: int) -> None:
        """When a body is complete or refused, release the `size` bytes it held."""
        self.held -= size
