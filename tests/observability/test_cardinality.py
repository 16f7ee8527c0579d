"""Cardinality: the receiver's /metrics has as many series after 1,000 distinct deliveries as
after 100. Every delivery carries new event, subscription and user ids; they come in every
outcome the receiver can give (applied, held for a receipt, duplicate, stale, each way of failing
verification, unknown webhook, an unknown event type of its own); none of those values, nor a
secret or a key, becomes a label value."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from devstack.project.receiver_process import ReceiverProcess
from tests.receiver.layout import project, webhook_file
from tests.receiver.payloads import signed, subscription_event

pytestmark = pytest.mark.integration

APP, OTHER_APP = "billing/app", "shop/other"
SECRET, OTHER_SECRET = "whsec_cardinality_app", "whsec_cardinality_other"
KEY, OTHER_KEY = "rk_cardinality_app", "rk_cardinality_other"
KINDS = 10  # deliveries cycle through this many kinds: the first 100 hold every kind ten times
DELIVERIES = 1000
CHECKPOINT = 100


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[ReceiverProcess]:
    secrets_dir = tmp_path / "secrets"
    project(
        secrets_dir,
        dict(
            [
                webhook_file(APP, [(SECRET, None)], KEY),
                webhook_file(OTHER_APP, [(OTHER_SECRET, None)], OTHER_KEY),
            ]
        ),
    )
    process = ReceiverProcess(tmp_path, secrets_dir, f"sqlite:///{tmp_path}/r.db").start()
    yield process
    process.stop()


class Traffic:
    """Distinct deliveries, number `i` of kind `i % KINDS`; remembers every id it made up."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client
        self.made_up: set[str] = set()
        self.events: dict[int, dict[str, Any]] = {}

    def _ids(self, i: int) -> tuple[str, str]:
        subscription, user = f"sub_card{i:05d}", f"user-card-{i:05d}"
        self.made_up.update({subscription, user})
        return subscription, user

    def _event(self, i: int, subscription: str, **fields: Any) -> dict[str, Any]:
        event = subscription_event(subscription, event_id=f"evt_card{i:05d}", **fields)
        self.made_up.add(str(event["id"]))
        self.events[i] = event
        return event

    def _post(
        self, path: str, event: dict[str, Any], secrets: list[str], timestamp: int | None = None
    ) -> int:
        body, headers = signed(event, secrets, timestamp)
        return self.client.post(path, content=body, headers=headers).status_code

    def _receipt(self, key: str, subscription: str, user: str) -> None:
        answer = self.client.post(
            "/v1/receipts",
            headers={"Authorization": f"Bearer {key}"},
            json={"app_user_id": user, "fetch_token": subscription},
        )
        assert answer.status_code in (200, 201), answer.text

    def send(self, i: int) -> int:
        """Send delivery `i`; return its HTTP status."""
        subscription, user = self._ids(i)
        path = f"/webhooks/{APP}"
        kind = i % KINDS
        if kind == 0:  # applied
            self._receipt(KEY, subscription, user)
            return self._post(path, self._event(i, subscription), [SECRET])
        if kind == 1:  # held: no receipt
            return self._post(path, self._event(i, subscription), [SECRET])
        if kind == 2:  # duplicate of the applied one two before, sent again
            return self._post(path, self.events[i - 2], [SECRET])
        if kind == 3:  # stale: older than the state applied three before
            earlier = str(self.events[i - 3]["data"]["object"]["id"])
            return self._post(path, self._event(i, earlier, created=1_600_000_000), [SECRET])
        if kind == 4:  # signed with a secret the receiver does not hold
            return self._post(path, self._event(i, subscription), [f"whsec_wrong{i}"])
        if kind == 5:  # no signature at all
            return self.client.post(path, content=b"{}").status_code
        if kind == 6:  # a webhook the receiver does not know, under a new name each time
            self.made_up.update({f"ns-card{i}", f"hook-card{i}"})
            return self._post(
                f"/webhooks/ns-card{i}/hook-card{i}", self._event(i, subscription), [SECRET]
            )
        if kind == 7:  # an event type of its own, signed
            event = self._event(i, subscription, event_type=f"made.up.card{i}")
            self.made_up.add(f"made.up.card{i}")
            return self._post(path, event, [SECRET])
        if kind == 8:  # the other app, applied
            self._receipt(OTHER_KEY, subscription, user)
            return self._post(
                f"/webhooks/{OTHER_APP}", self._event(i, subscription), [OTHER_SECRET]
            )
        # signed ten minutes ago: outside the tolerance
        return self._post(
            path, self._event(i, subscription), [SECRET], timestamp=int(time.time()) - 600
        )


EXPECTED_STATUS = {0: 200, 1: 422, 2: 200, 3: 200, 4: 400, 5: 400, 6: 404, 7: 400, 8: 200, 9: 400}


def series(exposition: str) -> list[str]:
    """The sample lines of a /metrics text: one per series."""
    return [line for line in exposition.splitlines() if line and not line.startswith("#")]


def test_series_stay_bounded_after_a_thousand_distinct_deliveries(
    receiver: ReceiverProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    counts: dict[int, int] = {}
    with httpx.Client(base_url=receiver.url, timeout=30) as client:
        traffic = Traffic(client)
        for i in range(DELIVERIES):
            status = traffic.send(i)
            assert status == EXPECTED_STATUS[i % KINDS], (i, status)
            if i + 1 in (CHECKPOINT, DELIVERIES):
                counts[i + 1] = len(series(client.get("/metrics").text))
        final = client.get("/metrics").text
    with capsys.disabled():
        print(
            f"\nreceiver /metrics series: {counts[CHECKPOINT]} after {CHECKPOINT} deliveries, "
            f"{counts[DELIVERIES]} after {DELIVERIES}"
        )
    assert counts[DELIVERIES] == counts[CHECKPOINT]
    leaked = sorted(value for value in traffic.made_up if value in final)
    assert leaked == [], f"ids of deliveries reached /metrics: {leaked[:10]}"
    for secret in (SECRET, OTHER_SECRET, KEY, OTHER_KEY, "whsec_wrong"):
        assert secret not in final
    assert 'outcome="webhook_not_found",type="",webhook="unknown"' in final
    assert 'outcome="unsupported_event_type",type="other",webhook="billing/app"' in final
