"""Running the receiver as a real process (the console script under uvicorn) on 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import httpx

from devstack.memory_cap import MemoryCap
from devstack.processes import ManagedProcess, free_port, wait_until

SCRIPT = Path(sys.executable).parent / "stripe-webhook-receiver"


class ReceiverProcess:
    """One `stripe-webhook-receiver` process; `.url` once started."""

    def __init__(
        self,
        workdir: Path,
        secrets_dir: Path,
        database_url: str,
        *extra: str,
        cap: MemoryCap | None = None,
    ) -> None:
        """`cap`: run the process inside this memory cgroup from its first instruction."""
        self.database_url = database_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        argv = [
            str(SCRIPT),
            "--secrets-dir",
            str(secrets_dir),
            "--database-url",
            database_url,
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            *extra,
        ]
        self.process = ManagedProcess(
            f"receiver-{self.port}",
            argv if cap is None else cap.command(argv),
            workdir / f"receiver-{self.port}.log",
        )

    def start(self, *, ready: bool = True) -> ReceiverProcess:
        """Start it and wait for /readyz (or only /healthz when `ready` is false)."""
        self.launch()
        return self.wait(ready=ready)

    def launch(self) -> ReceiverProcess:
        """Start the process without waiting for it."""
        self.process.start()
        return self

    def wait(self, *, ready: bool = True) -> ReceiverProcess:
        """Wait until it answers /readyz (or /healthz); report its log if it exits."""
        path = "/readyz" if ready else "/healthz"

        def answering() -> bool:
            if not self.process.alive():
                return True  # stop waiting: check_alive below reports the log
            return httpx.get(self.url + path, timeout=1.0).status_code == 200

        wait_until(answering, timeout=30, what=f"receiver on port {self.port}")
        self.process.check_alive()
        return self

    def stop(self) -> None:
        self.process.stop()

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")
