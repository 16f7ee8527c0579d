"""The emulator as `make dev-up` starts it: the launcher, flags, the account rate limit."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import stripe

from devstack.stripe_emulator.fixtures import StripeTarget
from devstack.stripe_emulator.launcher import EmulatorProcess

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorProcess]:
    process = EmulatorProcess(
        Path(tmp_path_factory.mktemp("limited-emulator")), rate_limit=5, retry_schedule=()
    ).start()
    try:
        yield process
    finally:
        process.stop()


def test_rate_limit_answers_429_rate_limit_and_counts_it(limited: EmulatorProcess) -> None:
    target = StripeTarget(limited.base_url)
    api_key = target.new_api_key()
    target.account_id(api_key)  # looked up before the burst, so `stats` needs no API call
    client = target.client(api_key, max_network_retries=0)
    statuses, codes = [], set()
    for _ in range(12):
        try:
            client.v1.webhook_endpoints.list()
            statuses.append(200)
        except stripe.RateLimitError as error:
            codes.add((error.json_body or {}).get("error", {}).get("code"))
            statuses.append(429)
    assert 429 in statuses
    assert codes == {"rate_limit"}
    assert statuses[:3] == [200, 200, 200]
    stats = target.stats(api_key)
    assert stats["rate_limited"] >= statuses.count(429)
    other = target.client(target.new_api_key())
    assert other.v1.webhook_endpoints.list().data == []


def test_stop_ends_the_process_by_pid(tmp_path: Path) -> None:
    process = EmulatorProcess(tmp_path).start()
    pid = process.pid
    assert httpx.get(process.base_url + "/_emulator/health", timeout=5).json()["ok"] is True
    process.stop()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    assert "Uvicorn running on http://127.0.0.1:" in (tmp_path / "stripe-emulator.log").read_text()


def test_unrecognized_path_is_stripes_404(stripe_emulator: StripeTarget) -> None:
    api_key = stripe_emulator.new_api_key()
    answer = httpx.get(
        stripe_emulator.base_url + "/v1/charges_of_the_light_brigade",
        headers={"Authorization": f"Bearer {api_key}"},
        timeout=10,
    )
    assert answer.status_code == 404
    assert answer.json()["error"]["type"] == "invalid_request_error"
    assert "Unrecognized request URL" in answer.json()["error"]["message"]
