"""The launcher of `stripe-webhook-receiver`: one replica as a real subprocess under uvicorn,
reading its webhooks from a secrets directory. A FedReceiver is one whose directory a Secret
projector fills from the aggregated Secret, as the kubelet fills a mounted Secret volume.
Tests, benchmarks and the stack's own scenarios all start the receiver through these."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

from devstack.node.projector import SecretProjector
from devstack.processes import VENV_BIN, ManagedProcess, free_port, wait_answering

RECEIVER_SCRIPT: Final = VENV_BIN / "stripe-webhook-receiver"


@dataclass
class ReceiverProcess:
    """One receiver replica on `host:port`, its log in `log_dir`.

    `flags` come after the ones this launcher sets; `env` and `cwd` are the child's (by
    default the caller's); `wrapper` goes before the program (taskset, a profiler)."""

    log_dir: Path
    secrets_dir: Path
    database_url: str
    flags: Sequence[str] = ()
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    wrapper: Sequence[str] = ()
    name: str = ""
    process: ManagedProcess = field(init=False)

    def __post_init__(self) -> None:
        name = self.name or f"receiver-{self.host}-{self.port}"
        self.process = ManagedProcess(
            name, self.argv(), self.log_dir / f"{name}.log", env=self.env, cwd=self.cwd
        )

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid

    def argv(self) -> list[str]:
        """Return the command line."""
        return [
            *self.wrapper,
            str(RECEIVER_SCRIPT),
            f"--secrets-dir={self.secrets_dir}",
            f"--database-url={self.database_url}",
            f"--host={self.host}",
            f"--port={self.port}",
            *self.flags,
        ]

    def start(self, *, ready: bool = True, timeout: float = 30.0) -> ReceiverProcess:
        """Start it and wait for /readyz (or only /healthz when `ready` is false)."""
        self.launch()
        return self.wait(ready=ready, timeout=timeout)

    def launch(self) -> ReceiverProcess:
        """Start the process without waiting for it."""
        self.process.start()
        return self

    def wait(self, *, ready: bool = True, timeout: float = 30.0) -> ReceiverProcess:
        """Wait until it answers /readyz (or /healthz); report its log if it exits."""
        path = "/readyz" if ready else "/healthz"
        wait_answering(self.process, self.url + path, timeout=timeout)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM it (SIGKILL after `timeout`)."""
        self.process.stop(timeout=timeout)

    def log(self) -> str:
        """Return its whole log."""
        return self.process.log_path.read_text(errors="replace")


@dataclass
class FedReceiver:
    """A receiver (SQLite and its log in `workdir`) whose secrets directory a projector of the
    Secret `namespace/secret_name` keeps current."""

    kubeconfig: Path
    namespace: str
    secret_name: str
    workdir: Path
    host: str = "127.0.0.1"
    port: int = field(default_factory=free_port)
    projector: SecretProjector | None = None
    server: ReceiverProcess | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def secrets_dir(self) -> Path:
        return self.workdir / "secrets"

    @property
    def database(self) -> Path:
        """The receiver's SQLite file."""
        return self.workdir / "receiver.db"

    def start(self) -> FedReceiver:
        """Feed the directory (if not fed yet), start the receiver, wait for /healthz."""
        self.release()
        self.server = ReceiverProcess(
            self.workdir,
            self.secrets_dir,
            f"sqlite:///{self.database}",
            host=self.host,
            port=self.port,
            name="receiver",  # its log: workdir/receiver.log, across restarts
        ).start(ready=False)
        return self

    def hold_back(self) -> None:
        """Stop feeding the receiver: it keeps the secrets it has, as a receiver whose kubelet
        has not synced the Secret volume yet would."""
        if self.projector is not None:
            self.projector.stop()
            self.projector = None

    def release(self) -> None:
        """Feed the receiver again; return once its directory shows the Secret as it is now."""
        if self.projector is None:
            self.secrets_dir.mkdir(parents=True, exist_ok=True)
            self.projector = SecretProjector(
                self.kubeconfig, self.namespace, self.secret_name, self.secrets_dir
            ).start()

    def stop_server(self) -> None:
        """Stop the receiver, not its feed."""
        if self.server is not None:
            self.server.stop()

    def stop(self) -> None:
        """Stop the receiver and its feed."""
        self.hold_back()
        self.stop_server()
