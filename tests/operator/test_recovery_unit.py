"""Recovery's decisions without a cluster: which answers of the receiver settle an event, which
listed events belong to which gap, the one listing window that covers an account's gaps, and
one loop (one round at a time) per account, whatever the number of its webhooks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from stripe_webhook_operator import gaps, recovery, redelivery
from stripe_webhook_operator.gaps import Gap
from stripe_webhook_operator.secret_value import SecretValue
from stripe_webhook_operator.settings import Settings
from tests.operator.conftest import bare_runtime

NOW = datetime(2031, 5, 17, 12, 0, 0, tzinfo=UTC)
UPDATED = "customer.subscription.updated"
DELETED = "customer.subscription.deleted"


def event(ident: str, seconds_ago: int, kind: str = UPDATED) -> dict[str, object]:
    return {"id": ident, "type": kind, "created": int(NOW.timestamp()) - seconds_ago}


def test_2xx_and_a_stored_receipt_not_found_are_definite_answers() -> None:
    assert redelivery.judge(200, b"{}").definite
    assert redelivery.judge(204, b"").definite
    stored = json.dumps({"error": {"code": "receipt_not_found", "message": "..."}}).encode()
    assert redelivery.judge(422, stored).definite


def test_other_answers_are_retried_and_5xx_or_no_answer_stop_the_rest() -> None:
    other_422 = json.dumps({"error": {"code": "something_else"}}).encode()
    assert not redelivery.judge(422, other_422).definite
    assert not redelivery.judge(422, b"not json").definite
    refused = redelivery.judge(400, b"{}")
    assert not refused.definite
    assert not refused.unavailable
    assert "400" in refused.detail
    assert redelivery.judge(503, b"").unavailable
    assert redelivery.judge(None, b"").unavailable


def test_a_gap_gets_the_listed_events_of_its_interval_and_its_types() -> None:
    gap = Gap(NOW - timedelta(seconds=100), NOW - timedelta(seconds=10), (gaps.REQUESTED,))
    listed = [
        event("evt_before", 200),
        event("evt_first", 100),
        event("evt_deleted", 50, DELETED),
        event("evt_last", 10),
        event("evt_after", 5),
    ]
    assert [e["id"] for e in redelivery.events_in(gap, listed, (UPDATED,))] == [
        "evt_first",
        "evt_last",
    ]
    both = redelivery.events_in(gap, listed, (UPDATED, DELETED))
    assert [e["id"] for e in both] == ["evt_first", "evt_deleted", "evt_last"]


def test_one_window_covers_every_due_gap_of_the_account() -> None:
    first = Gap(NOW - timedelta(hours=3), NOW - timedelta(hours=2), (gaps.DELIVERY_FAILED,))
    second = Gap(NOW - timedelta(minutes=5, microseconds=500), NOW, (gaps.REQUESTED,))
    window = redelivery.listing_window([first, second])
    assert window == (int(first.start.timestamp()), int(NOW.timestamp()))
    assert redelivery.covered(first, window)
    assert redelivery.covered(second, window)
    assert redelivery.listing_window([Gap(NOW, None, (gaps.NOT_YET_ENABLED,))]) is None
    later = Gap(NOW, NOW + timedelta(seconds=5), (gaps.REQUESTED,))
    assert not redelivery.covered(later, window)


class CountingRecoveries(recovery.Recoveries):
    """The loops of Recoveries with each round only counted (no cluster, no Stripe)."""

    def __init__(self) -> None:
        super().__init__(bare_runtime(Settings(receiver_url="http://receiver")))
        self.rounds: list[frozenset[tuple[str, str]]] = []

    async def round(self, account: Any) -> float:
        self.rounds.append(frozenset(account.webhooks))
        return 3600.0


@pytest.fixture(autouse=True)
def quick_gather(monkeypatch: pytest.MonkeyPatch) -> None:
    """A round's gathering pause, shortened so the loops' tests take little time."""
    monkeypatch.setattr(recovery, "GATHER", 0.05)


async def settle() -> None:
    """Let every loop that was asked run its round."""
    await asyncio.sleep(0.3)


async def test_the_webhooks_of_one_account_share_one_loop_and_one_round() -> None:
    loops = CountingRecoveries()
    key = SecretValue("sk_test_one")
    loops.register(("billing", "a"), key)
    loops.register(("billing", "b"), key)
    loops.register(("shop", "c"), SecretValue("sk_test_other"))
    await settle()
    assert sorted(map(sorted, loops.rounds)) == [
        [("billing", "a"), ("billing", "b")],
        [("shop", "c")],
    ]
    await loops.stop()


async def test_a_pass_that_closed_a_gap_starts_a_round_once_it_has_ended() -> None:
    loops = CountingRecoveries()
    key = SecretValue("sk_test_one")
    loops.register(("billing", "a"), key)
    await settle()
    assert len(loops.rounds) == 1
    loops.pass_ended(("billing", "a"))  # nothing asked for: no round
    loops.wake_after_pass(("billing", "a"))
    await settle()
    assert len(loops.rounds) == 1  # asked, but its pass has not ended yet
    loops.pass_ended(("billing", "a"))
    await settle()
    assert len(loops.rounds) == 2
    await loops.stop()


async def test_the_last_webhook_forgotten_ends_its_accounts_loop() -> None:
    loops = CountingRecoveries()
    key = SecretValue("sk_test_one")
    loops.register(("billing", "a"), key)
    loops.register(("billing", "b"), key)
    await settle()
    loops.forget(("billing", "a"))
    loops.saw_delivering(("billing", "b"), NOW)
    (account,) = loops._accounts.values()
    assert account.task is not None
    assert not account.task.done()
    loops.forget(("billing", "b"))
    with contextlib.suppress(asyncio.CancelledError):
        await account.task
    assert account.task.cancelled()
    assert loops.seen(("billing", "b")) is None
    await loops.stop()


def subscription_event(ident: str, subscription: str, seconds_ago: int) -> dict[str, object]:
    found = event(ident, seconds_ago)
    found["data"] = {"object": {"id": subscription, "object": "subscription"}}
    return found


def test_lanes_keep_each_subscriptions_events_together_and_in_order() -> None:
    listed = [subscription_event(f"evt_{i}", f"sub_{i % 5}", 100 - i) for i in range(40)]
    split = redelivery.lanes(listed, 3)
    assert 1 <= len(split) <= 3
    assert sorted(e["id"] for lane in split for e in lane) == sorted(e["id"] for e in listed)
    for subscription in {f"sub_{i}" for i in range(5)}:
        holding = [
            lane
            for lane in split
            if any(redelivery.subscription_of(e) == subscription for e in lane)
        ]
        assert len(holding) == 1
        mine = [e for e in holding[0] if redelivery.subscription_of(e) == subscription]
        assert [e["created"] for e in mine] == sorted(e["created"] for e in mine)
    assert redelivery.lanes(listed, 1) == [listed]


class ScriptedRecoveries(recovery.Recoveries):
    """Deliveries answered from a script (event id -> answer), counting how many are in flight
    at once."""

    def __init__(self, lanes: int, answers: dict[str, redelivery.Answer]) -> None:
        super().__init__(
            bare_runtime(Settings(receiver_url="http://receiver", recovery_lanes=lanes))
        )
        self.answers = answers
        self.sent: list[str] = []
        self.in_flight = 0
        self.most_in_flight = 0

    async def deliver(self, key: Any, event: Any, secret: SecretValue) -> redelivery.Answer:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        self.sent.append(event["id"])
        return self.answers.get(event["id"], redelivery.Answer(True, "200"))


KEYS = type("Keys", (), {"signing": SecretValue("whsec_test")})()


async def test_redeliveries_run_side_by_side_and_every_event_is_answered() -> None:
    listed = [subscription_event(f"evt_{i}", f"sub_{i}", 100 - i) for i in range(24)]
    loops = ScriptedRecoveries(4, {})
    answered, first, error = await loops._deliver_all(("billing", "a"), listed, KEYS)  # type: ignore[arg-type]
    assert (answered, first, error) == (24, None, "")
    assert sorted(loops.sent) == sorted(e["id"] for e in listed)
    assert 1 < loops.most_in_flight <= 4


async def test_a_failed_redelivery_resumes_the_gap_at_the_oldest_event_not_settled() -> None:
    listed = [subscription_event(f"evt_{i}", f"sub_{i % 6}", 100 - i) for i in range(30)]
    refused = redelivery.Answer(False, "the receiver answered 400")
    loops = ScriptedRecoveries(3, {"evt_7": refused, "evt_20": refused})
    answered, first, error = await loops._deliver_all(("billing", "a"), listed, KEYS)  # type: ignore[arg-type]
    assert first == recovery.created_at(listed[7])
    assert error == "the receiver answered 400"
    # Nothing older than the resume point is left unanswered: every event before evt_7 was sent.
    assert {f"evt_{i}" for i in range(7)} <= set(loops.sent)
    assert answered < 30


async def test_a_receiver_that_cannot_take_more_stops_every_lane() -> None:
    listed = [subscription_event(f"evt_{i}", f"sub_{i}", 100 - i) for i in range(40)]
    down = redelivery.Answer(False, "the receiver answered 503", unavailable=True)
    loops = ScriptedRecoveries(4, {"evt_0": down})
    _, first, error = await loops._deliver_all(("billing", "a"), listed, KEYS)  # type: ignore[arg-type]
    assert first == recovery.created_at(listed[0])
    assert error == "the receiver answered 503"
    assert len(loops.sent) < 40
