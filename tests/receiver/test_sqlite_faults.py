"""SQLite on a full or read-only file system: 503 (never 500, never a silent loss), then
recovery once space or write access returns. The file system is a small tmpfs of our own."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from devstack.processes import wait_until
from devstack.project.receiver_process import ReceiverProcess
from tests.receiver.layout import project, webhook_file
from tests.receiver.payloads import signed, subscription_event

pytestmark = pytest.mark.integration

SECRET = "whsec_fs_app"
KEY = "rk_fs_app"
PATH = "/webhooks/billing/app"
AUTH = {"Authorization": f"Bearer {KEY}"}


@pytest.fixture
def small_fs(tmp_path: Path) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root (CI runs as root)")
    mount_point = tmp_path / "fs"
    mount_point.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount_point)], check=True)
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", "-l", str(mount_point)], check=False)


@pytest.fixture
def secrets_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "secrets"
    project(directory, dict([webhook_file("billing/app", [(SECRET, None)], KEY)]))
    return directory


def fill(directory: Path) -> Path:
    """Write a file until the file system refuses with ENOSPC; return it."""
    filler = directory / "filler"
    with filler.open("wb") as out:
        for _ in range(1000):  # 8 MiB in 64 KiB writes fills it long before this bound
            try:
                out.write(b"\0" * 65536)
                out.flush()
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                return filler
    raise AssertionError("the file system never filled up")


def post(receiver: ReceiverProcess, event: dict[str, object]) -> httpx.Response:
    body, headers = signed(event, [SECRET])
    return httpx.post(receiver.url + PATH, content=body, headers=headers, timeout=30)


def test_a_full_disk_is_503_and_the_retry_applies_after_space_returns(
    small_fs: Path, secrets_dir: Path, tmp_path: Path
) -> None:
    receiver = ReceiverProcess(tmp_path, secrets_dir, f"sqlite:///{small_fs}/r.db").start()
    try:
        httpx.post(
            receiver.url + "/v1/receipts",
            json={"app_user_id": "u", "fetch_token": "sub_f"},
            headers=AUTH,
        ).raise_for_status()
        filler = fill(small_fs)
        base = int(time.time())
        events = [
            subscription_event("sub_f", created=base + i, price=f"price_{i}") for i in range(5)
        ]
        answers = [post(receiver, event) for event in events]
        assert {r.status_code for r in answers} <= {200, 503}
        assert any(r.status_code == 503 for r in answers)
        for answer in answers:
            if answer.status_code == 503:
                assert answer.json()["error"]["code"] == "database_unavailable"
        filler.unlink()
        (small_fs / "probe").unlink(missing_ok=True)
        for event in events:  # Stripe retries every delivery that was not answered 2xx
            retried = post(receiver, event)
            assert retried.status_code == 200
            assert retried.json()["outcome"] in {"applied", "duplicate", "stale"}
        state = httpx.get(receiver.url + "/v1/subscribers/u", headers=AUTH).json()
        assert state["subscriber"]["subscriptions"]["prod_premium"]["price_id"] == "price_4"
    finally:
        receiver.stop()
    assert "Traceback" not in receiver.log()


def test_a_read_only_database_is_503_until_it_is_writable(
    small_fs: Path, secrets_dir: Path, tmp_path: Path
) -> None:
    url = f"sqlite:///{small_fs}/r.db"
    first = ReceiverProcess(tmp_path, secrets_dir, url).start()
    first.stop()
    subprocess.run(["mount", "-o", "remount,ro", str(small_fs)], check=True)
    receiver = ReceiverProcess(tmp_path, secrets_dir, url).start(ready=False)
    try:
        assert httpx.get(receiver.url + "/readyz").status_code == 503
        answer = post(receiver, subscription_event("sub_ro"))
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "database_unavailable"
        receipt = httpx.post(
            receiver.url + "/v1/receipts",
            json={"app_user_id": "u", "fetch_token": "sub_ro"},
            headers=AUTH,
        )
        assert receipt.status_code == 503
        subprocess.run(["mount", "-o", "remount,rw", str(small_fs)], check=True)
        wait_until(
            lambda: httpx.get(receiver.url + "/readyz").status_code == 200,
            timeout=20,
            what="receiver ready after the file system became writable",
        )
        assert post(receiver, subscription_event("sub_ro")).status_code == 422
    finally:
        receiver.stop()
    assert "Traceback" not in receiver.log()
