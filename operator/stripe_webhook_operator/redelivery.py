"""Redelivery: one recovered event posted to the receiver as Stripe would have sent it, and
what the receiver's answer settles; with the pure choices of a round (which listed events a gap
missed, the window one listing must cover).

The body is the event's JSON exactly as the Events API returned it, signed with the webhook's
current secret at the moment it is sent (event_signing.py). An answer is definite when it is a
2xx, or a 422 `receipt_not_found` (the receiver stored the event and replays it once the
receipt comes); any other answer leaves the event for a later attempt.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx

from stripe_webhook_operator import event_signing, gaps
from stripe_webhook_operator.gaps import Gap
from stripe_webhook_operator.secret_value import SecretValue

logger = logging.getLogger(__name__)

WebhookKey = tuple[str, str]


@dataclass(frozen=True)
class Answer:
    """The receiver's answer to one redelivery: definite, or why not (no secret in it)."""

    definite: bool
    detail: str
    unavailable: bool = False  # no point sending the rest now


def judge(status: int | None, body: bytes) -> Answer:
    """Return whether the receiver's answer settles an event: 2xx, or 422 with the code
    `receipt_not_found` (stored for replay once the receipt comes)."""
    if status is None:
        return Answer(False, "the receiver could not be reached", unavailable=True)
    if 200 <= status < 300:
        return Answer(True, f"{status}")
    if status == 422:
        code = None
        with contextlib.suppress(ValueError, AttributeError, TypeError):
            code = json.loads(body).get("error", {}).get("code")
        if code == "receipt_not_found":
            return Answer(True, "422 receipt_not_found")
        return Answer(False, f"the receiver answered 422 ({code or 'no code'})")
    return Answer(False, f"the receiver answered {status}", unavailable=status >= 500)


def created_at(event: Mapping[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(event.get("created") or 0), UTC)


def events_in(
    gap: Gap, events: Iterable[Mapping[str, Any]], types: Sequence[str]
) -> list[Mapping[str, Any]]:
    """Return the listed events a webhook wanting `types` missed in `gap`, oldest first."""
    return [e for e in events if e.get("type") in types and gap.holds(created_at(e))]


def listing_window(due: Iterable[Gap]) -> tuple[int, int] | None:
    """Return the Unix seconds [gte, lte] one listing needs to cover every gap in `due`."""
    span = gaps.covering(due)
    if span is None:
        return None
    return math.floor(span[0].timestamp()), math.ceil(span[1].timestamp())


def covered(gap: Gap, window: tuple[int, int]) -> bool:
    """Whether the listing of `window` holds every event of the (closed) `gap`."""
    assert gap.end is not None
    return window[0] <= gap.start.timestamp() and gap.end.timestamp() <= window[1]


def subscription_of(event: Mapping[str, Any]) -> str:
    """Return the id of the subscription `event` is about (its own id if it names none)."""
    data = event.get("data")
    target = data.get("object") if isinstance(data, Mapping) else None
    found = target.get("id") if isinstance(target, Mapping) else None
    return str(found or event.get("id") or "")


def lanes(events: Sequence[Mapping[str, Any]], count: int) -> list[list[Mapping[str, Any]]]:
    """Split `events` (oldest first) into at most `count` lanes that can be delivered side by
    side: all of one subscription's events in the same lane, in their order, so the receiver
    still sees each subscription's changes oldest first."""
    split: list[list[Mapping[str, Any]]] = [[] for _ in range(max(count, 1))]
    for event in events:
        split[zlib.crc32(subscription_of(event).encode()) % len(split)].append(event)
    return [lane for lane in split if lane]


async def post(
    http: httpx.AsyncClient,
    receiver_url: str,
    key: WebhookKey,
    event: Mapping[str, Any],
    secret: SecretValue,
    now: datetime,
) -> Answer:
    """Post `event` to webhook `key`'s path on the receiver at `receiver_url`, signed with
    `secret` at `now`; return what its answer settles."""
    payload = json.dumps(event, separators=(",", ":")).encode()
    header = event_signing.signature_header(payload, secret, int(now.timestamp()))
    url = f"{receiver_url}/webhooks/{key[0]}/{key[1]}"
    try:
        response = await http.post(
            url,
            content=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
        )
    except httpx.HTTPError as exc:
        logger.info("%s/%s: redelivery failed (%s)", *key, type(exc).__name__)
        return judge(None, b"")
    return judge(response.status_code, response.content)
