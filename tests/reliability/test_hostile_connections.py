"""Hostile connections against the receiver under the memory limit the chart gives it: a
thousand (a hundred in `make test`) slow bodies, stalled half-sent large bodies, idle
keep-alive connections, oversized headers, chunked bodies that never end, and pipelined
requests, each attack for half a minute, while signed deliveries arrive at a steady 20 per
second. Each attack: the receiver neither crashes nor is killed for passing its cap, every
hostile connection gets an answer or a close within the receiver's deadlines (no 5xx but the
documented 503), and every honest delivery is answered 200 and applied; their p99 and the
receiver's peak memory go into docs/reliability.md.

The cap is enforced by the kernel: the receiver runs in a cgroup (v1 memory controller here,
v2 where that is what the host has) limited to `receiver.resources.limits.memory` of the
chart's values.yaml, as the kubelet would limit its container.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml

from devstack.memory_cap import MemoryCap
from devstack.processes import REPO_ROOT
from devstack.project.receiver_process import ReceiverProcess
from stripe_webhook_receiver import settings as receiver_settings
from tests.receiver.layout import project, webhook_file
from tests.reliability import attacks as a
from tests.reliability.ledger import TIMEOUT, Ledger, trials

pytestmark = pytest.mark.integration

CONNECTIONS = trials(100, 1000)
SECONDS = trials(6, 30)
WEBHOOK = "billing/app"
PATH = "/webhooks/billing/app"
SECRET = "whsec_hostile_connections"
KEY = "rk_hostile_connections"
SUBSCRIPTIONS = [f"sub_honest_{i}" for i in range(5)]
VALUES = REPO_ROOT / "charts" / "stripe-webhook-operator" / "values.yaml"
UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def chart_memory_limit() -> int:
    """The receiver's memory limit in the chart's values, in bytes."""
    text = yaml.safe_load(VALUES.read_text())["receiver"]["resources"]["limits"]["memory"]
    match = re.fullmatch(r"(\d+)(Ki|Mi|Gi)", str(text))
    assert match, f"the chart's receiver memory limit '{text}' is not in Ki, Mi or Gi"
    return int(match.group(1)) * UNITS[match.group(2)]


@dataclass
class Capped:
    process: ReceiverProcess
    cap: MemoryCap
    database: Path

    def applied(self) -> int:
        with sqlite3.connect(f"file:{self.database}?mode=ro", uri=True) as db:
            (count,) = db.execute(
                "SELECT count(*) FROM processed_events WHERE webhook = ?", (WEBHOOK,)
            ).fetchone()
        return int(count)


@pytest.fixture(scope="module")
def capped(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Capped]:
    """The receiver with its default limits, in a cgroup capped at the chart's memory limit,
    with receipts registered for the honest subscriptions."""
    workdir = tmp_path_factory.mktemp("connections")
    secrets_dir = workdir / "secrets"
    project(secrets_dir, dict([webhook_file(WEBHOOK, [(SECRET, None)], KEY)]))
    cap = MemoryCap.create(chart_memory_limit(), "hostile-receiver")
    database = workdir / "receiver.db"
    process = ReceiverProcess(workdir, secrets_dir, f"sqlite:///{database}", wrapper=cap.wrapper())
    try:
        process.start()
        for subscription in SUBSCRIPTIONS:
            httpx.post(
                f"{process.url}/v1/receipts",
                json={"app_user_id": subscription, "fetch_token": subscription},
                headers={"Authorization": f"Bearer {KEY}"},
                timeout=10,
            ).raise_for_status()
        yield Capped(process, cap, database)
    finally:
        process.stop()
        cap.remove()


# Each attack, and the answers its clients must get (at least one of them, some of the time).
ATTACKS: list[tuple[str, a.Client, set[int]]] = [
    ("slow bodies, a byte a second", a.slow_body, {408}),
    ("half-sent 1 MB bodies, then silence", a.stalled_large_body, {408, 503}),
    ("idle keep-alive connections", a.idle_keep_alive, {200}),
    ("oversized or endless headers", a.oversized_headers, {431}),
    ("chunked bodies that never end", a.endless_chunked, {408, 413, 503}),
    ("pipelined requests, some never read", a.pipelining, {200, 400}),
]


@pytest.mark.timeout(TIMEOUT)
@pytest.mark.parametrize(
    ("name", "client", "expected"), ATTACKS, ids=[name.split(",")[0] for name, _, _ in ATTACKS]
)
def test_honest_deliveries_are_answered_through_an_attack(
    capped: Capped, ledger: Ledger, name: str, client: a.Client, expected: set[int]
) -> None:
    target = a.Target(
        capped.process.port,
        PATH,
        client_timeout=receiver_settings.DEFAULT_CLIENT_TIMEOUT,
        keep_alive_timeout=receiver_settings.DEFAULT_KEEP_ALIVE_TIMEOUT,
    )
    capped.cap.reset_peak()
    applied_before = capped.applied()
    honest = a.HonestTraffic(capped.process.port, PATH, SECRET, SUBSCRIPTIONS).start()
    try:
        tally = a.run_attack(target, client, CONNECTIONS, SECONDS)
    finally:
        honest.stop()
    peak, kills = capped.cap.peak(), capped.cap.oom_kills()
    alive = capped.process.process.alive()
    applied = capped.applied() - applied_before

    row = ledger.hostile_row(f"{CONNECTIONS:,} hostile connections: {name}")
    row.cases += tally.opened
    row.failures += tally.server_errors + int(not alive) + kills
    row.unavailable += tally.statuses[503]
    row.hangs += tally.hangs
    row.honest_sent = (row.honest_sent or 0) + honest.sent
    row.honest_lost = (
        (row.honest_lost or 0) + honest.lost + abs(honest.outcomes["applied"] - applied)
    )
    row.honest_p99_ms = honest.p99_ms()
    row.peak_mib = peak / 2**20
    row.cap_mib = capped.cap.limit / 2**20
    print(
        f"{name}: {tally.opened} connections, answers {dict(tally.statuses)}, "
        f"{tally.closed_unanswered} closed unanswered, {tally.refused_connects} refused, "
        f"{tally.hangs} hangs; honest {dict(honest.outcomes)} p99 {honest.p99_ms():.1f} ms; "
        f"peak {peak / 2**20:.0f} MiB of {capped.cap.limit / 2**20:.0f}"
    )
    assert alive, capped.process.process.log_tail()
    assert kills == 0, "the kernel killed the receiver for passing its memory cap"
    assert tally.hangs == 0
    assert tally.server_errors == 0, dict(tally.statuses)
    assert tally.opened >= CONNECTIONS
    assert expected & set(tally.statuses), dict(tally.statuses)
    assert honest.sent >= SECONDS * 10  # the steady rate held (20 a second asked)
    assert honest.lost == 0, dict(honest.outcomes)
    assert applied == honest.outcomes["applied"]
    assert "Traceback" not in capped.process.log()
