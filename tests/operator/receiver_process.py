"""The real receiver for the readiness handshake: the projector mirrors the aggregated Secret
into a directory as the kubelet would, the receiver serves /readyz/webhooks from it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from devstack.node.projector import SecretProjector
from devstack.processes import REPO_ROOT, ManagedProcess, free_port

RECEIVER_BIN = REPO_ROOT / ".venv" / "bin" / "stripe-webhook-receiver"


@dataclass
class Receiver:
    """One receiver replica on 127.0.0.1 fed by a projector of `namespace/secret_name`."""

    kubeconfig: Path
    namespace: str
    secret_name: str
    workdir: Path
    port: int = field(default_factory=free_port)
    projector: SecretProjector | None = None
    process: ManagedProcess | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Receiver:
        secrets_dir = self.workdir / "secrets"
        secrets_dir.mkdir(parents=True, exist_ok=True)
        if self.projector is None:
            self.projector = SecretProjector(
                self.kubeconfig, self.namespace, self.secret_name, secrets_dir
            ).start()
        argv = [
            str(RECEIVER_BIN),
            f"--secrets-dir={secrets_dir}",
            f"--database-url=sqlite:///{self.workdir / 'receiver.db'}",
            "--host=127.0.0.1",
            f"--port={self.port}",
        ]
        self.process = ManagedProcess(
            f"receiver-{self.port}", argv, self.workdir / "receiver.log"
        ).start()
        deadline = time.monotonic() + 30
        while True:
            self.process.check_alive()
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver not healthy:\n{self.process.log_tail()}")
            time.sleep(0.1)

    def stop_server(self) -> None:
        if self.process is not None:
            self.process.stop()

    def stop(self) -> None:
        self.stop_server()
        if self.projector is not None:
            self.projector.stop()
