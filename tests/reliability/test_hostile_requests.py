"""Hostile requests at volume against the real receiver process: thousands of generated cases
(tests/reliability/hostile.py: headers, signatures, timestamps, bodies, JSON shapes, sizes,
encodings, paths, methods, the app-facing API), a few hundred in `make test`, at least ten
thousand in `make soak`. Every case: no 5xx but the documented 503, an answer (or a close)
within the client timeout, a JSON error body for every refusal, no secret in any answer; and
when they are done, nothing that a request without a valid signature or key sent has changed
the state stored (the guarded subscription, its receipts, processed events, kept payloads)."""

from __future__ import annotations

import collections
import json
import os
import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.project.receiver_process import ReceiverProcess
from tests.receiver.layout import project, webhook_file
from tests.receiver.payloads import signed, subscription_event
from tests.reliability import hostile as h
from tests.reliability.ledger import SOAK, TIMEOUT, Ledger, trials

pytestmark = pytest.mark.integration

SCENARIO = "Hostile requests, generated (10 families)"
CASES = trials(600, 12_000)
# A short client timeout keeps the cases that stall on purpose cheap; an answer later than
# the timeout plus the margin is a hang.
CLIENT_TIMEOUT = 2
MARGIN = 8.0
WORKERS = 8
SEED = int(os.environ.get("HOSTILE_SEED", "16"))
USER = "alice"


@dataclass
class Receiver:
    process: ReceiverProcess
    database: Path


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Receiver]:
    workdir = tmp_path_factory.mktemp("hostile")
    secrets_dir = workdir / "secrets"
    project(
        secrets_dir,
        dict(
            [
                webhook_file(h.GUARDED, [(h.GUARDED_SECRET, None)], h.GUARDED_KEY),
                webhook_file(h.SHAPES, [(h.SHAPES_SECRET, None)], h.SHAPES_KEY),
                webhook_file("shop/other", [(h.OTHER_SECRET, None)], "rk_hostile_other"),
            ]
        ),
    )
    database = workdir / "hostile.db"
    process = ReceiverProcess(
        workdir, secrets_dir, f"sqlite:///{database}", flags=(f"--client-timeout={CLIENT_TIMEOUT}",)
    ).start()
    yield Receiver(process, database)
    process.stop()


def _guard(receiver: Receiver) -> dict[str, Any]:
    """Register the guarded subscription and apply one genuine event to it."""
    auth = {"Authorization": f"Bearer {h.GUARDED_KEY}"}
    url = receiver.process.url
    receipt = {"app_user_id": USER, "fetch_token": h.GUARDED_SUBSCRIPTION}
    httpx.post(f"{url}/v1/receipts", json=receipt, headers=auth, timeout=10).raise_for_status()
    body, headers = signed(subscription_event(h.GUARDED_SUBSCRIPTION), [h.GUARDED_SECRET])
    answer = httpx.post(url + h.path_of(h.GUARDED), content=body, headers=headers, timeout=10)
    assert answer.json() == {"outcome": "applied"}
    document: dict[str, Any] = httpx.get(
        f"{url}/v1/subscribers/{USER}", headers=auth, timeout=10
    ).json()["subscriber"]
    return document


def _stored(database: Path) -> dict[str, Any]:
    """What the store holds for the guarded webhook, beside its delivery log."""
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:

        def rows(sql: str) -> list[tuple[Any, ...]]:
            return sorted(db.execute(sql, (h.GUARDED,)).fetchall(), key=repr)

        return {
            "processed": rows("SELECT event_id FROM processed_events WHERE webhook = ?"),
            "receipts": rows("SELECT * FROM receipts WHERE webhook = ?"),
            "subscriptions": rows("SELECT * FROM subscriptions WHERE webhook = ?"),
            # A refused delivery is logged, never kept or attributed to a secret.
            "kept": rows(
                "SELECT id FROM deliveries WHERE webhook = ? "
                "AND (payload IS NOT NULL OR secret_fingerprint IS NOT NULL)"
            ),
        }


def _error_shaped(body: bytes) -> bool:
    try:
        error = json.loads(body)["error"]
    except (ValueError, KeyError, TypeError):
        return False
    return isinstance(error, dict) and bool(error.get("code")) and bool(error.get("message"))


def _shown(answer: h.Answer) -> bool:
    return any(secret.encode() in answer.body for secret in h.SECRETS)


def _describe(case: h.Case, answer: h.Answer) -> str:
    return f"{case.family}: {case.raw[:160]!r} -> {answer.status} {answer.body[:160]!r}"


@pytest.mark.timeout(TIMEOUT)
def test_hostile_requests_at_volume_break_nothing(receiver: Receiver, ledger: Ledger) -> None:
    before_document = _guard(receiver)
    before = _stored(receiver.database)
    generator = h.Generator(SEED)
    cases = [generator.case() for _ in range(CASES)]
    port = receiver.process.port
    started = time.monotonic()
    with ThreadPoolExecutor(WORKERS) as pool:
        answers = list(pool.map(lambda c: h.send(port, c, CLIENT_TIMEOUT + MARGIN), cases))
    elapsed = time.monotonic() - started

    failures, hangs, shown, shapeless = [], [], [], []
    unavailable = 0
    statuses: collections.Counter[tuple[str, int | None]] = collections.Counter()
    for case, answer in zip(cases, answers, strict=True):
        statuses[case.family, answer.status] += 1
        if answer.status is not None and answer.status >= 500:
            if answer.status == 503:
                unavailable += 1
            else:
                failures.append(_describe(case, answer))
        if answer.hung:
            hangs.append(_describe(case, answer))
        if _shown(answer):
            shown.append(_describe(case, answer))
        head = case.raw.split(b" ", 1)[0]
        refused = answer.status is not None and answer.status >= 400
        if refused and head != b"HEAD" and not _error_shaped(answer.body):
            shapeless.append(_describe(case, answer))

    auth = {"Authorization": f"Bearer {h.GUARDED_KEY}"}
    after_document = httpx.get(
        f"{receiver.process.url}/v1/subscribers/{USER}", headers=auth, timeout=10
    ).json()["subscriber"]
    after = _stored(receiver.database)
    changes = [key for key in before if before[key] != after[key]]
    if after_document["subscriptions"] != before_document["subscriptions"]:
        changes.append("the subscriber document")

    row = ledger.hostile_row(SCENARIO)
    row.cases += len(cases)
    row.failures += len(failures)
    row.unavailable += unavailable
    row.hangs += len(hangs)
    row.unverified_changes += len(changes)
    row.secrets_shown += len(shown)
    families = collections.Counter(case.family for case in cases)
    print(
        f"{len(cases)} hostile cases (seed {SEED}, soak={SOAK}) in {elapsed:.0f} s: "
        f"{dict(families)}; answers {dict(statuses)}"
    )
    assert not failures, failures[:10]
    assert not hangs, hangs[:10]
    assert not shown, shown[:10]
    assert not changes, changes
    assert not shapeless, shapeless[:10]
    assert unavailable == 0  # the database is up and no limit is reached: no 503 either
    assert "Traceback" not in receiver.process.log()
    # The generator reached every family, and its verified cases got past the signature.
    assert len(families) == len(generator.families)
    read = sum(n for (family, status), n in statuses.items() if status in (200, 422))
    assert read > 0
