"""The configurations compared by the receiver benchmark, each started fresh for every run.

Every configuration answers `POST /webhooks/bench/shop` with the same pool of events. A run
starts its processes pinned to the server cores, waits until they answer, registers the
receipts a receiver needs, and afterwards counts what reached the disk.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import signal
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg

from benchmarks.events import PoolSpec
from benchmarks.processes import process_tree_rss_kib
from devstack.processes import (
    REPO_ROOT,
    VENV_BIN,
    ManagedProcess,
    StackError,
    free_port,
    port_open,
)
from devstack.project.receiver_process import ReceiverProcess
from devstack.services.postgres import PostgresServer

NAMESPACE = "bench"
NAME = "shop"
WEBHOOK_PATH = f"/webhooks/{NAMESPACE}/{NAME}"
START_TIMEOUT = 60.0
ENTITLED_PRODUCT = "prod_bench0000"
# Child processes find the project's packages from the source tree whatever the editable
# install put on the path, and `benchmarks` from the repository root.
CHILD_PYTHONPATH = os.pathsep.join(
    str(REPO_ROOT / folder) for folder in ("", "receiver", "operator", "stack")
)


@dataclass
class Placement:
    """Which CPUs the servers, the database and the load generator run on (taskset lists)."""

    servers: list[str]
    database: str | None
    load: str | None

    @classmethod
    def for_this_machine(cls) -> Placement:
        """Give the servers their own cores and the load generator another, as far as they go.

        With four or more CPUs: servers on the first two, the database on the third, load on
        the fourth. With two: one server core, and the load generator (with the database and
        any second replica) on the other. With one, nothing is pinned.
        """
        cpus = sorted(os.sched_getaffinity(0))
        if len(cpus) >= 4:
            return cls([str(cpus[0]), str(cpus[1])], str(cpus[2]), str(cpus[3]))
        if len(cpus) >= 2:
            return cls([str(cpus[0]), str(cpus[1])], str(cpus[1]), str(cpus[1]))
        return cls([], None, None)

    def server(self, index: int) -> str | None:
        return self.servers[index % len(self.servers)] if self.servers else None


def pinned(argv: Sequence[str], cpus: str | None) -> list[str]:
    """Prefix `argv` with taskset when there is a CPU list and taskset exists."""
    if cpus is None or shutil.which("taskset") is None:
        return list(argv)
    return ["taskset", "-c", cpus, *argv]


@dataclass
class Running:
    """A started configuration: its processes, the ports to load, and how to count rows."""

    processes: list[ManagedProcess]
    ports: list[int]
    readiness_path: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def wait_ready(self) -> None:
        """Wait until every process answers; fail at once, with its log, if one exits."""
        deadline = time.monotonic() + START_TIMEOUT
        for process, port in zip(self.processes, self.ports, strict=True):
            while not self._answers(port):
                process.check_alive()
                if time.monotonic() > deadline:
                    raise StackError(f"{process.name} not ready after {START_TIMEOUT:.0f} s")
                time.sleep(0.1)

    def _answers(self, port: int) -> bool:
        if self.readiness_path is None:
            return port_open(port)
        try:
            answer = httpx.get(f"http://127.0.0.1:{port}{self.readiness_path}", timeout=2)
        except httpx.HTTPError:
            return False
        return answer.status_code == 200

    def rss_kib(self) -> int:
        """Resident memory of all server processes and their children now, in KiB."""
        return sum(process_tree_rss_kib(process.pid) for process in self.processes)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        for process in self.processes:
            process.stop(timeout=30, sig=sig)


class Configuration:
    """One way to receive the events; subclasses say how to start it and what it stored."""

    key: str = ""
    label: str = ""
    replicas: int = 1

    def __init__(self, workdir: Path, placement: Placement) -> None:
        self.workdir = workdir
        self.placement = placement
        self.secret = f"whsec_{secrets.token_urlsafe(24)}"
        # When set, the next server started runs under cProfile and writes its stats here.
        self.profile_path: Path | None = None
        # When set, the next server started logs its pauses here (benchmarks/pauses.py).
        self.pauses_path: Path | None = None

    def pool_spec(self, subscriptions: Sequence[str]) -> PoolSpec:
        return PoolSpec(self.secret, subscriptions, WEBHOOK_PATH)

    def start(self, run: int, subscriptions: Sequence[str]) -> Running:
        """Start fresh processes (a fresh database) for run number `run`; return when ready."""
        raise NotImplementedError

    def stored(self, running: Running) -> int | None:
        """Return how many events the run left on disk, or None if it stores nothing."""
        return None

    def _env(self, env: dict[str, str]) -> dict[str, str]:
        return {**os.environ, "PYTHONPATH": CHILD_PYTHONPATH, **env}

    def _process(
        self, name: str, argv: Sequence[str], cpus: str | None, env: dict[str, str]
    ) -> ManagedProcess:
        return ManagedProcess(
            name,
            pinned(self._profiled(argv), cpus),
            self.workdir / "logs" / f"{name}.log",
            env=self._env(env),
            cwd=REPO_ROOT,
        )

    def _profiler(self) -> list[str]:
        """Return what runs a Python program under cProfile (its main thread), if a profile
        is wanted."""
        if self.pauses_path is not None:
            return [
                str(VENV_BIN / "python"),
                "-m",
                "benchmarks.pauses",
                "--log",
                str(self.pauses_path),
            ]
        if self.profile_path is None:
            return []
        return [str(VENV_BIN / "python"), "-m", "cProfile", "-o", str(self.profile_path)]

    def _profiled(self, argv: Sequence[str]) -> list[str]:
        """Run a Python program under cProfile if a profile is wanted."""
        profile = self._profiler()
        if profile and Path(argv[0]).name.startswith("python"):
            return [*profile, *argv[1:]]
        return [*profile, *argv]

    def _uvicorn(self, name: str, app: str, env: dict[str, str]) -> Running:
        port = free_port()
        argv = [
            str(VENV_BIN / "python"),
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--log-level",
            "warning",
        ]
        process = self._process(name, argv, self.placement.server(0), env).start()
        running = Running([process], [port])
        running.wait_ready()
        return running


class BareStarlette(Configuration):
    key = "bare"
    label = "(1) bare Starlette, 200"

    def start(self, run: int, subscriptions: Sequence[str]) -> Running:
        return self._uvicorn(f"bare-{run}", "benchmarks.baselines.bare:app", {})


class NaiveSqlite(Configuration):
    key = "naive"
    label = "(2) naive: HMAC + json + SQLite commit/request"

    def start(self, run: int, subscriptions: Sequence[str]) -> Running:
        database = self.workdir / f"naive-{run}.db"
        env = {"NAIVE_SECRET": self.secret, "NAIVE_DATABASE": str(database)}
        running = self._uvicorn(f"naive-{run}", "benchmarks.baselines.naive:app", env)
        running.extra["database"] = str(database)
        return running

    def stored(self, running: Running) -> int | None:
        with contextlib.closing(sqlite3.connect(running.extra["database"])) as connection:
            return int(connection.execute("SELECT count(*) FROM events").fetchone()[0])


class NaivePostgres(Configuration):
    """(2) on the benchmark's PostgreSQL server, a fresh database per run."""

    key = "naive-pg"
    label = "(2p) naive: HMAC + json + PostgreSQL commit/request"

    def __init__(self, workdir: Path, placement: Placement, server: PostgresServer) -> None:
        super().__init__(workdir, placement)
        self.server = server

    def start(self, run: int, subscriptions: Sequence[str]) -> Running:
        url = self.server.new_database()
        env = {"NAIVE_SECRET": self.secret, "NAIVE_DATABASE": url}
        running = self._uvicorn(f"naive-pg-{run}", "benchmarks.baselines.naive_postgres:app", env)
        running.extra["database"] = url
        return running

    def stored(self, running: Running) -> int | None:
        return postgres_count(running.extra["database"], "events")


class FlaskStripe(Configuration):
    key = "flask"
    label = "(3) Stripe docs: Flask + construct_event, gunicorn"

    def start(self, run: int, subscriptions: Sequence[str]) -> Running:
        port = free_port()
        argv = [
            str(VENV_BIN / "gunicorn"),
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
            "--log-level",
            "warning",
            "benchmarks.baselines.flask_stripe:app",
        ]
        env = {"FLASK_STRIPE_SECRET": self.secret}
        process = self._process(f"flask-{run}", argv, self.placement.server(0), env).start()
        running = Running([process], [port])
        running.wait_ready()
        return running


class OurReceiver(Configuration):
    """Our receiver: `stripe-webhook-receiver` with a secrets directory and receipts."""

    def __init__(self, workdir: Path, placement: Placement) -> None:
        super().__init__(workdir, placement)
        self.receipts_key = secrets.token_urlsafe(32)

    def database_url(self, run: int) -> str:
        raise NotImplementedError

    def secrets_dir(self) -> Path:
        """Write the webhook's file as the operator would, in a plain directory."""
        directory = self.workdir / f"secrets-{self.key}"
        directory.mkdir(parents=True, exist_ok=True)
        document = {
            "webhook": f"{NAMESPACE}/{NAME}",
            "endpoint_id": "we_bench",
            "livemode": False,
            "signing_secrets": [{"secret": self.secret, "not_after": None}],
            "receipts_api_key_sha256": hashlib.sha256(self.receipts_key.encode()).hexdigest(),
            "entitlements": {"premium": [ENTITLED_PRODUCT]},
        }
        (directory / f"{NAMESPACE}.{NAME}.json").write_text(json.dumps(document))
        return directory

    def start(self, run: int, subscriptions: Sequence[str]) -> Running:
        url = self.database_url(run)
        secrets_dir = self.secrets_dir()
        processes, ports = [], []
        for replica in range(self.replicas):
            receiver = ReceiverProcess(
                self.workdir / "logs",
                secrets_dir,
                url,
                flags=("--log-level", "warning"),
                env=self._env({}),
                cwd=REPO_ROOT,
                wrapper=pinned(self._profiler(), self.placement.server(replica)),
                name=f"{self.key}-{run}-{replica}",
            )
            processes.append(receiver.launch().process)
            ports.append(receiver.port)
        running = Running(processes, ports, readiness_path="/readyz", extra={"database": url})
        try:
            running.wait_ready()
            self.register_receipts(ports[0], subscriptions)
        except BaseException:
            running.stop()
            raise
        return running

    def register_receipts(self, port: int, subscriptions: Sequence[str]) -> None:
        """Register one subscriber per subscription, so that every event is applied."""
        headers = {"Authorization": f"Bearer {self.receipts_key}"}
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers=headers) as client:
            for index, subscription in enumerate(subscriptions):
                answer = client.post(
                    "/v1/receipts",
                    json={"app_user_id": f"user_{index}", "fetch_token": subscription},
                    timeout=10,
                )
                answer.raise_for_status()


class OurReceiverSqlite(OurReceiver):
    key = "ours-sqlite"
    label = "(4) ours, SQLite, 1 worker"

    def database_url(self, run: int) -> str:
        return f"sqlite:///{self.workdir / f'receiver-{run}.db'}"

    def stored(self, running: Running) -> int | None:
        path = running.extra["database"].removeprefix("sqlite:///")
        with contextlib.closing(sqlite3.connect(path)) as connection:
            return int(connection.execute("SELECT count(*) FROM processed_events").fetchone()[0])


class OurReceiverPostgres(OurReceiver):
    key = "ours-pg1"
    label = "(5) ours, PostgreSQL, 1 replica"

    def __init__(self, workdir: Path, placement: Placement, server: PostgresServer) -> None:
        super().__init__(workdir, placement)
        self.server = server

    def database_url(self, run: int) -> str:
        return self.server.new_database()

    def stored(self, running: Running) -> int | None:
        return postgres_count(running.extra["database"], "processed_events")


def postgres_count(url: str, table: str) -> int:
    """Return how many rows `table` holds in the PostgreSQL database at `url`."""
    with psycopg.connect(url) as connection:
        query = f"SELECT count(*) FROM {table}"  # our own table names
        row = connection.execute(query).fetchone()
        return int(row[0]) if row else 0


class OurReceiverPostgresTwo(OurReceiverPostgres):
    key = "ours-pg2"
    label = "(5) ours, PostgreSQL, 2 replicas"
    replicas = 2
