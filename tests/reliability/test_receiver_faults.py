"""The receiver under a stream of real Stripe deliveries while it is SIGKILLed, while its
PostgreSQL restarts, and while a half-written secrets file is swapped in: afterwards every
event the emulator sent is processed exactly once (the receiver's own tables say so)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from devstack.project.receiver_process import ReceiverProcess
from devstack.services.postgres import PostgresServer
from devstack.stripe_emulator.fixtures import StripeTarget, own_emulator
from tests.receiver.layout import project
from tests.reliability.ledger import Ledger, trials
from tests.reliability.traffic import App, UpdateStream, tally

pytestmark = pytest.mark.integration

SETTLE_TIMEOUT = 60.0
# Stripe retries for three days; the emulator's default schedule gives up after 9 s, less than
# two receiver restarts on a loaded machine take. This one spans about 30 s.
RETRY_SCHEDULE = (0.2, 0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


def updates() -> int:
    return trials(30, 120)


@pytest.fixture(scope="module")
def stripe_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeTarget]:
    """An emulator of this module's own, retrying deliveries for longer."""
    workdir = Path(tmp_path_factory.mktemp("patient-emulator"))
    with own_emulator(workdir, retry_schedule=RETRY_SCHEDULE) as target:
        yield target


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PostgresServer]:
    """A PostgreSQL server of this test's own: restarting it disturbs no other test."""
    server = PostgresServer(tmp_path / "pg").start()
    yield server
    server.stop()


def start_app(stripe: StripeTarget, workdir: Path, database_url: str) -> App:
    secrets_dir = workdir / "secrets"
    project(secrets_dir, {})
    receiver = ReceiverProcess(workdir, secrets_dir, database_url).start()
    return App(stripe, stripe.new_api_key(), receiver, secrets_dir, database_url).set_up()


def finish(app: App, stream: UpdateStream, ledger: Ledger, scenario: str, crashes: int) -> None:
    """Wait for the stream and every retry, record the counts, then assert none lost or
    doubled."""
    stream.join()
    attempts = app.stripe.wait_until_settled(app.api_key, timeout=SETTLE_TIMEOUT)
    counted = tally(app)
    ledger.row(scenario).add(
        trials=1,
        events_sent=counted.sent,
        lost=len(counted.lost),
        applied_twice=len(counted.twice),
        crashes=crashes,
    )
    assert counted.sent == stream.sent
    assert not counted.lost, [
        (a["event"], a["attempt"], a["status"], a["error"], a["time"])
        for a in attempts
        if a["event"] in counted.lost
    ]
    assert not counted.twice
    assert "Traceback" not in app.receiver.log()


@pytest.mark.parametrize("trial", range(trials(1, 3)))
def test_receiver_sigkilled_under_load_applies_every_event_once(
    stripe_emulator: StripeTarget, tmp_path: Path, ledger: Ledger, trial: int
) -> None:
    app = start_app(stripe_emulator, tmp_path, f"sqlite:///{tmp_path}/receiver.db")
    kills = [updates() // 3, 2 * updates() // 3]

    def crash_and_restart() -> None:
        app.receiver.process.kill()
        time.sleep(0.3)  # deliveries in this gap fail to connect: Stripe retries them
        app.receiver.start()

    stream = UpdateStream(app, updates())
    for n in kills:
        stream.at(n, crash_and_restart)
    try:
        finish(app, stream.start(), ledger, "Receiver SIGKILL under load (SQLite)", len(kills))
    finally:
        app.receiver.stop()


@pytest.mark.parametrize("trial", range(trials(1, 3)))
def test_postgres_restart_under_load_is_503_then_every_event_once(
    stripe_emulator: StripeTarget, tmp_path: Path, pg: PostgresServer, ledger: Ledger, trial: int
) -> None:
    app = start_app(stripe_emulator, tmp_path, pg.new_database())

    def outage() -> None:
        pg.stop_server("immediate")
        # The stream waits for this action: the events already sent may all have been
        # delivered before the stop, so send more until one meets the outage.
        deadline = time.monotonic() + 10
        while not any(a["status"] == 503 for a in app.stripe.deliveries(app.api_key)):
            assert time.monotonic() < deadline, "no delivery met the database outage"
            stream.update_one()
            time.sleep(0.1)
        pg.start_server()

    stream = UpdateStream(app, updates()).at(updates() // 2, outage)
    try:
        finish(app, stream.start(), ledger, "PostgreSQL restarted under load", 1)
    finally:
        app.receiver.stop()
    statuses = {a["status"] for a in app.stripe.deliveries(app.api_key)}
    assert statuses <= {200, 503}, statuses


@pytest.mark.parametrize("trial", range(trials(1, 3)))
def test_half_written_secrets_file_keeps_the_last_good_set_under_load(
    stripe_emulator: StripeTarget, tmp_path: Path, ledger: Ledger, trial: int
) -> None:
    app = start_app(stripe_emulator, tmp_path, f"sqlite:///{tmp_path}/receiver.db")

    def break_file() -> None:
        ((name, content),) = app.files().items()
        project(app.secrets_dir, {name: content[: len(content) // 2]})

    stream = UpdateStream(app, updates()).at(updates() // 3, break_file)
    try:
        finish(app, stream.start(), ledger, "Secrets file half-written under load", 1)
    finally:
        app.receiver.stop()
    statuses = {a["status"] for a in app.stripe.deliveries(app.api_key)}
    assert statuses == {200}, statuses  # never a 400: the last good secret kept verifying
