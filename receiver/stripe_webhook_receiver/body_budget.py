"""How many bytes of unfinished request bodies the receiver holds, across all requests.

The per-request limit (1 MiB) bounds one body, not a thousand of them: a thousand clients that
each send most of a large body and then stall would make the process hold a gigabyte until
their deadlines pass. After each read of a connection, the bytes of its request body that
have arrived while the body is still incomplete are taken from one budget, and given back when
the body is complete or the request ends; a read the budget cannot cover ends that request
with 503 `overloaded` and frees its bytes at once (protocol.py does this, before the
application or uvicorn's buffers hold them across reads). A body that arrives whole in one
read takes nothing: its bytes are already in memory, and refusing it would free none of them,
so the deliveries Stripe sends (small, sent at once) are never refused because of slow
clients.
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
