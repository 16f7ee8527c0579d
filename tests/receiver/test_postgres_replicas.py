"""Several receiver replicas on one PostgreSQL: each event applied once, newest state wins,
apps isolated, and 503 while the database is down."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.project.receiver_process import ReceiverProcess
from devstack.services.postgres import PostgresServer
from stripe_webhook_receiver.migrations import LATEST
from tests.receiver.layout import project, webhook_file
from tests.receiver.payloads import signed, subscription_event

pytestmark = pytest.mark.integration

SECRET = "whsec_pg_app"
KEY = "rk_pg_app"
OTHER_KEY = "rk_pg_other"
PATH = "/webhooks/billing/app"


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("pg-secrets")
    project(
        directory,
        dict(
            [
                webhook_file("billing/app", [(SECRET, None)], KEY),
                webhook_file("shop/other", [("whsec_pg_other", None)], OTHER_KEY),
            ]
        ),
    )
    return directory


@pytest.fixture(scope="module")
def replicas(
    postgres: PostgresServer, tmp_path_factory: pytest.TempPathFactory, secrets_dir: Path
) -> Iterator[tuple[str, list[ReceiverProcess]]]:
    url = postgres.new_database()
    workdir = tmp_path_factory.mktemp("pg-replicas")
    processes = [ReceiverProcess(workdir, secrets_dir, url) for _ in range(2)]
    # Both start at once: their migrations serialize on an advisory lock.
    for process in processes:
        process.launch()
    try:
        for process in processes:
            process.wait()
        yield url, processes
    finally:
        for process in processes:
            process.stop()
    for process in processes:
        assert "Traceback" not in process.log()


def test_migrations_ran_once_for_both_replicas(replicas: tuple[str, list[ReceiverProcess]]) -> None:
    url, _ = replicas
    with psycopg.connect(url) as connection:
        rows = connection.execute("SELECT version FROM schema_migrations").fetchall()
    assert [r[0] for r in rows] == list(range(1, LATEST + 1))


def test_the_same_event_at_two_replicas_at_once_is_applied_once(
    replicas: tuple[str, list[ReceiverProcess]],
) -> None:
    url, (a, b) = replicas
    auth = {"Authorization": f"Bearer {KEY}"}
    httpx.post(
        a.url + "/v1/receipts", json={"app_user_id": "u", "fetch_token": "sub_pg"}, headers=auth
    ).raise_for_status()
    base = int(time.time())
    events = [
        subscription_event("sub_pg", created=base + i, status="active", price=f"price_{i}")
        for i in range(20)
    ]
    deliveries = []
    for event in events:
        body, headers = signed(event, [SECRET])
        deliveries += [(a.url, body, headers), (b.url, body, headers)]

    def send(item: tuple[str, bytes, dict[str, str]]) -> str:
        base_url, body, headers = item
        response = httpx.post(base_url + PATH, content=body, headers=headers, timeout=30)
        assert response.status_code == 200, response.text
        outcome: str = response.json()["outcome"]
        return outcome

    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(send, deliveries))
    per_event = [Counter(outcomes[i : i + 2]) for i in range(0, len(outcomes), 2)]
    for counted in per_event:
        assert counted["duplicate"] == 1
        assert counted["applied"] + counted["stale"] == 1
    with psycopg.connect(url) as connection:
        processed = connection.execute(
            "SELECT COUNT(*) FROM processed_events WHERE webhook = 'billing/app'"
        ).fetchone()
        state = connection.execute(
            "SELECT price_id, order_event_id FROM subscriptions WHERE subscription_id = 'sub_pg'"
        ).fetchone()
    assert processed is not None
    assert processed[0] == len(events)
    assert state == ("price_19", events[-1]["id"])


def test_apps_are_isolated_across_replicas(replicas: tuple[str, list[ReceiverProcess]]) -> None:
    _, (a, b) = replicas
    mine = {"Authorization": f"Bearer {KEY}"}
    theirs = {"Authorization": f"Bearer {OTHER_KEY}"}
    httpx.post(
        a.url + "/v1/receipts", json={"app_user_id": "iso", "fetch_token": "sub_iso"}, headers=mine
    ).raise_for_status()
    body, headers = signed(subscription_event("sub_iso"), [SECRET])
    assert httpx.post(b.url + PATH, content=body, headers=headers).status_code == 200
    seen = httpx.get(b.url + "/v1/subscribers/iso", headers=theirs).json()["subscriber"]
    assert seen["subscriptions"] == {}
    own = httpx.get(a.url + "/v1/subscribers/iso", headers=mine).json()["subscriber"]
    assert list(own["subscriptions"]) == ["prod_premium"]


def test_database_down_is_503_and_recovery_applies_the_retry(
    tmp_path: Path, secrets_dir: Path
) -> None:
    server = PostgresServer(tmp_path / "pg").start()
    receiver: ReceiverProcess | None = None
    try:
        receiver = ReceiverProcess(tmp_path, secrets_dir, server.new_database()).start()
        auth = {"Authorization": f"Bearer {KEY}"}
        httpx.post(
            receiver.url + "/v1/receipts",
            json={"app_user_id": "d", "fetch_token": "sub_down"},
            headers=auth,
        ).raise_for_status()
        server.stop_server("fast")
        event = subscription_event("sub_down")
        body, headers = signed(event, [SECRET])
        down = httpx.post(receiver.url + PATH, content=body, headers=headers, timeout=30)
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "database_unavailable"
        assert httpx.get(receiver.url + "/readyz", timeout=30).status_code == 503
        assert (
            httpx.get(receiver.url + "/v1/subscribers/d", headers=auth, timeout=30).status_code
            == 503
        )
        server.start_server()
        body, headers = signed(event, [SECRET])  # Stripe's retry, freshly signed
        again = httpx.post(receiver.url + PATH, content=body, headers=headers, timeout=30)
        assert again.status_code == 200
        assert again.json() == {"outcome": "applied"}
    finally:
        if receiver is not None:
            receiver.stop()
        server.stop()
