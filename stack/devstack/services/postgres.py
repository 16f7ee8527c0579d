"""PostgreSQL from Debian's packages, in a throwaway cluster on a free loopback port.

initdb and postgres refuse to run as root, and the suite runs as root in CI, so both run as
the `postgres` system user. The cluster lives in its own folder under the system temporary
directory, because the caller's work folder (pytest's, for one) is often private to root.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import uuid
from pathlib import Path

import psycopg

from devstack.processes import ManagedProcess, StackError, free_port

SYSTEM_USER = "postgres"
SUPERUSER = "postgres"
START_TIMEOUT = 30.0

# The signal for each pg_ctl shutdown mode: smart waits for clients, fast disconnects them,
# immediate exits without a checkpoint (what a crash looks like to clients and to recovery).
# "kill" is no pg_ctl mode: SIGKILL to the whole process group, a machine-level crash of the
# server processes (the kernel keeps what was written, as fsync=off assumes).
SHUTDOWN_SIGNALS = {
    "smart": signal.SIGTERM,
    "fast": signal.SIGINT,
    "immediate": signal.SIGQUIT,
    "kill": signal.SIGKILL,
}


def postgres_bin_dir() -> Path:
    """Return the newest `/usr/lib/postgresql/<major>/bin` that holds initdb."""
    found = sorted(
        (Path(p).parent for p in glob.glob("/usr/lib/postgresql/*/bin/initdb")),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
    )
    if not found:
        raise StackError(
            "PostgreSQL is not installed; run `make system-packages` "
            "(or `apt-get install postgresql`)."
        )
    return found[-1]


def as_system_user(argv: list[str]) -> list[str]:
    """Prefix argv so that it runs as the `postgres` user when we are root.

    setpriv execs in place (runuser forks and, on SIGTERM, kills its child after two seconds),
    so the PID we record is the postmaster's own and shutdown signals reach it unchanged.
    """
    if os.geteuid() != 0:
        return argv
    return ["setpriv", f"--reuid={SYSTEM_USER}", f"--regid={SYSTEM_USER}", "--init-groups", *argv]


class PostgresServer:
    """A PostgreSQL cluster of its own: `.url` of the server, `.new_database()` for a test."""

    def __init__(self, workdir: Path, port: int | None = None, *, durable: bool = False) -> None:
        self.workdir = Path(workdir)
        self.durable = durable
        self.port = port if port is not None else free_port()
        self.bin_dir = postgres_bin_dir()
        self.cluster_dir: Path | None = None
        self.process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        """URL of the server's `postgres` database, as the superuser (trust auth on loopback)."""
        return self.database_url("postgres")

    def database_url(self, name: str) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{name}"

    @property
    def pid(self) -> int:
        if self.process is None:
            raise StackError("PostgreSQL was never started")
        return self.process.pid

    @property
    def data_dir(self) -> Path:
        if self.cluster_dir is None:
            raise StackError("PostgreSQL was never started")
        return self.cluster_dir / "data"

    @property
    def socket_dir(self) -> Path:
        if self.cluster_dir is None:
            raise StackError("PostgreSQL was never started")
        return self.cluster_dir / "socket"

    def start(self) -> PostgresServer:
        """Create the cluster (once) and start the server; return when it accepts queries."""
        try:
            if self.cluster_dir is None:
                self._init_cluster()
            self.start_server()
        except BaseException:
            self.stop()  # no half-made cluster or unready server left behind
            raise
        return self

    def _init_cluster(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.cluster_dir = Path(tempfile.mkdtemp(prefix="devstack-postgres-"))
        self.socket_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.cluster_dir, SYSTEM_USER, SYSTEM_USER)
            shutil.chown(self.socket_dir, SYSTEM_USER, SYSTEM_USER)
        argv = as_system_user(
            [
                str(self.bin_dir / "initdb"),
                f"--pgdata={self.data_dir}",
                f"--username={SUPERUSER}",
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
            ]
        )
        log = self.workdir / "initdb.log"
        with log.open("ab") as out:
            result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, check=False)
        if result.returncode != 0:
            raise StackError(f"initdb failed; see {log}:\n{log.read_text(errors='replace')}")

    def start_server(self) -> None:
        """Start the postmaster on the existing cluster, same port, and wait for queries."""
        if self.process is not None and self.process.alive():
            return
        argv = as_system_user(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data_dir),
                "-p",
                str(self.port),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"unix_socket_directories={self.socket_dir}",
                *self._durability_settings(),
                "-c",
                "max_connections=200",
            ]
        )
        self.process = ManagedProcess("postgres", argv, self.workdir / "postgres.log")
        self.process.start()
        self.process.wait_ready(self._accepts_queries, timeout=START_TIMEOUT, what="PostgreSQL")

    def _durability_settings(self) -> list[str]:
        if self.durable:
            return ["-c", "fsync=on", "-c", "synchronous_commit=on", "-c", "full_page_writes=on"]
        # Skipping fsync only risks data on a machine crash, which tests never survive anyway.
        # synchronous_commit stays on: a committed row must outlive a postmaster crash, which
        # the reliability tests cause on purpose.
        return ["-c", "fsync=off", "-c", "synchronous_commit=on", "-c", "full_page_writes=off"]

    def _accepts_queries(self) -> bool:
        with psycopg.connect(self.url, connect_timeout=2) as conn:
            conn.execute("SELECT 1")
        return True

    def stop_server(self, mode: str = "fast") -> None:
        """Stop the postmaster in `mode` (smart, fast, immediate, kill); keep the cluster."""
        if mode not in SHUTDOWN_SIGNALS:
            raise ValueError(f"Shutdown mode '{mode}' is unknown; use one of {SHUTDOWN_SIGNALS}.")
        if self.process is not None:
            self.process.stop(timeout=30.0, sig=SHUTDOWN_SIGNALS[mode])

    def restart(self, mode: str = "fast") -> None:
        """Stop the server in `mode` and start it again on the same port and data."""
        self.stop_server(mode)
        self.start_server()

    def new_database(self) -> str:
        """Create an empty database and return its URL."""
        name = f"test_{uuid.uuid4().hex[:16]}"
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self) -> None:
        """Stop the server and delete the cluster folder."""
        self.stop_server("fast")
        if self.cluster_dir is not None:
            shutil.rmtree(self.cluster_dir, ignore_errors=True)
            self.cluster_dir = None
