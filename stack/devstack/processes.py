"""Starting and stopping the local stack's processes: free ports, readiness, stop by PID."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, TypeVar

import httpx

REPO_ROOT = Path(__file__).resolve().parents[2]
TOOLS_BIN = REPO_ROOT / ".tools" / "bin"
# The project's console scripts sit beside the Python that runs the stack (`make venv`).
VENV_BIN = Path(sys.executable).parent
T = TypeVar("T")


class StackError(RuntimeError):
    """A local-stack component failed to build, start or become ready."""


class Forwarded(Protocol):
    """A way in from the host to a server inside the node (devstack.node.forward)."""

    def url(self, index: int = 0, scheme: str = "http") -> str: ...

    def stop(self) -> None: ...


class Node(Protocol):
    """What a server of the stack needs of a node (devstack.node.cluster) to run inside it:
    to start a process in its namespaces, and a way in from the host."""

    def run_inside(
        self,
        name: str,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: Path | None = None,
    ) -> ManagedProcess: ...

    def expose(self, host: str, port: int) -> Forwarded: ...


def stack_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """An environment in which `python -m devstack...` works: stack/ first on PYTHONPATH."""
    env = dict(os.environ if base is None else base)
    stack = str(REPO_ROOT / "stack")
    paths = [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != stack]
    env["PYTHONPATH"] = os.pathsep.join([stack, *paths])
    return env


def tool(name: str) -> Path:
    """Return the path of a binary built by `make tools`, or explain how to build it."""
    path = TOOLS_BIN / name
    if not path.exists():
        raise StackError(f"{path} does not exist; run `make tools` to build it.")
    return path


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    check: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.05
) -> None:
    """Poll `check` until it returns true, or raise StackError naming `what`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(interval)
    raise StackError(f"{what} not ready after {timeout:.0f} s")


def poll(what: str, check: Callable[[], T | None], timeout: float = 30.0) -> T:
    """Return the first truthy value of `check()`, polling; fail naming `what` (and the last
    error `check` raised) on timeout."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = check()
        except Exception as exc:
            last = exc
            value = None
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what} did not happen within {timeout:.0f} s (last error: {last})")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    """Return whether something accepts TCP connections on host:port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


@dataclass
class ManagedProcess:
    """A child process with its log file; stopped by PID (its whole process group)."""

    name: str
    argv: Sequence[str]
    log_path: Path
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    user: str | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ManagedProcess:
        """Start the process in its own session, output appended to `log_path`."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = list(self.argv)
        if self.user is not None:
            argv = ["runuser", "-u", self.user, "--", *argv]
        env = dict(os.environ if self.env is None else self.env)
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                argv,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=env,
                cwd=self.cwd,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        if self.popen is None:
            raise StackError(f"{self.name} was never started")
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def check_alive(self) -> None:
        """Raise with the tail of the log if the process has exited."""
        if not self.alive():
            raise StackError(f"{self.name} exited early; last log lines:\n{self.log_tail()}")

    def wait_ready(
        self, ready: Callable[[], bool], *, timeout: float, what: str, interval: float = 0.1
    ) -> None:
        """Poll `ready` until it holds; raise StackError naming `what` after `timeout`, or
        with the tail of the log as soon as the process exits."""
        wait_until(
            lambda: not self.alive() or ready(), timeout=timeout, what=what, interval=interval
        )
        self.check_alive()  # an early exit ends the wait; say why, with its log

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> None:
        """Send `sig` to the process group, then SIGKILL after `timeout`; reap the child."""
        if self.popen is None or self.popen.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, signal.SIGKILL)
            self.popen.wait(timeout=timeout)

    def kill(self) -> None:
        """SIGKILL the process group at once (crash tests)."""
        self.stop(timeout=5.0, sig=signal.SIGKILL)


def wait_answering(process: ManagedProcess, url: str, *, timeout: float = 30.0) -> None:
    """Wait until `url` answers 200; fail at once, with the tail of the log, if `process`
    exits first."""
    deadline = time.monotonic() + timeout
    while True:
        process.check_alive()
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise StackError(
                f"{process.name} did not answer {url} within {timeout:.0f} s; last log lines:\n"
                f"{process.log_tail()}"
            )
        time.sleep(0.1)


def stop_pid(pid: int, timeout: float = 10.0) -> None:
    """Stop a process (group) that this stack started in an earlier command, by PID."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, sig)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not pid_running(pid):
                return
            time.sleep(0.05)


def proc_stat(pid: int) -> list[str] | None:
    """Return the fields of /proc/PID/stat after the command name (the state first), or None
    if the process is gone or a zombie (exited, not yet reaped by PID 1)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    # The command name is in parentheses and may contain spaces: split after its last `)`.
    fields = stat[stat.rindex(")") + 2 :].split()
    return None if fields[0] in ("Z", "X") else fields


def pid_running(pid: int) -> bool:
    """Return whether the process runs; a zombie does not."""
    return proc_stat(pid) is not None
