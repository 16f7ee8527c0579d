"""`make dev-up` / `make dev-down`: the local stack in the background, described by `.dev/env`.

`up` starts the node's cluster with the Stripe emulator inside it (one process owns the node,
devstack.node.serve, and undoes all of it when told to stop), stripe-mock and PostgreSQL,
each in its own session so that they outlive the command, and writes into the dev folder:

- `env`: `export` lines a shell can source (PATH with the tools first, KUBECONFIG reaching the
  node's API server, STRIPE_API_BASE and STRIPE_API_BASE_IN_CLUSTER, STRIPE_API_KEY,
  STRIPE_MOCK_BASE, DATABASE_URL, LOCAL_VALUES: the chart values for the local image, ...);
- `pids.json`: every process started and every folder to delete, which is all `down` needs.

The dev folder is `.dev/` in the repository, or `$DEVSTACK_DIR` (tests use their own).
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shlex
import shutil
import signal
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

from devstack.processes import REPO_ROOT, TOOLS_BIN, StackError, pid_running, proc_stat, stop_pid

DIR_VARIABLE = "DEVSTACK_DIR"
ENV_FILE = "env"
STATE_FILE = "pids.json"
STOP_TIMEOUT = 15.0  # etcd and the API server may take a few seconds to shut down cleanly
# The node's owner stops the whole node (Pods, containerd, kubelet, the control plane) first.
NODE_STOP_TIMEOUT = 90.0
NODE_START_TIMEOUT = 600.0


class HasPid(Protocol):
    @property
    def pid(self) -> int: ...


def dev_dir() -> Path:
    """Return the folder that holds the running stack's state (`$DEVSTACK_DIR` or `.dev/`)."""
    return Path(os.environ.get(DIR_VARIABLE) or REPO_ROOT / ".dev").resolve()


@dataclass
class Started:
    """One process `up` started: `stop_signal` goes first, then SIGTERM and SIGKILL.

    `identity` tells this process from a later one that was given the same PID (after a
    reboot, say), which `down` must not signal.
    """

    name: str
    pid: int
    stop_signal: int = signal.SIGTERM
    identity: str | None = None
    stop_timeout: float = STOP_TIMEOUT

    def __post_init__(self) -> None:
        if self.identity is None:
            self.identity = process_identity(self.pid)

    def alive(self) -> bool:
        current = process_identity(self.pid)
        return current is not None and current == self.identity


@dataclass
class StackState:
    """What `down` reads: the processes to stop and the folders to delete."""

    processes: list[Started] = field(default_factory=list)
    cleanup: list[str] = field(default_factory=list)

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, path: Path) -> StackState:
        raw = json.loads(path.read_text())
        return cls(
            processes=[Started(**entry) for entry in raw.get("processes", [])],
            cleanup=list(raw.get("cleanup", [])),
        )

    def alive(self) -> list[Started]:
        """The recorded processes that still run."""
        return [started for started in self.processes if started.alive()]

    def stop(self) -> None:
        """Stop every recorded process, newest first, then delete the recorded folders."""
        for started in reversed(self.processes):
            if not started.alive():
                continue
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(started.pid, started.stop_signal)
            if not wait_gone(started.pid, started.stop_timeout):
                stop_pid(started.pid)  # escalates to SIGKILL
        for path in self.cleanup:
            shutil.rmtree(path, ignore_errors=True)


def process_identity(pid: int) -> str | None:
    """Return the boot id and start time of a running process, or None if it is gone.

    A zombie counts as gone: once `up` has exited, its children belong to PID 1, which may
    reap them only later, and until then a stopped process still answers signal 0.
    """
    fields = proc_stat(pid)
    if fields is None:
        return None
    boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    # The start time (in clock ticks since boot) is 19 fields after the state.
    return f"{boot}:{fields[19]}"


def wait_gone(pid: int, timeout: float) -> bool:
    """Wait until the process has exited; return whether it did within `timeout`."""
    deadline = time.monotonic() + timeout
    while pid_running(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def new_stripe_api_key() -> str:
    """A fresh emulator key: any new `sk_test_` key opens an empty account of its own.

    Letters and digits only after the prefix: stripe-mock refuses other key shapes.
    """
    return f"sk_test_devstack{secrets.token_hex(16)}"


def env_lines(variables: dict[str, str]) -> str:
    """Render `export NAME=value` lines that a POSIX shell can source."""
    return "".join(f"export {name}={shlex.quote(value)}\n" for name, value in variables.items())


def up(directory: Path | None = None) -> int:
    """Start the stack unless it is already up; write `env` and `pids.json`; return an exit code."""
    directory = directory or dev_dir()
    state_path = directory / STATE_FILE
    if state_path.exists():
        running = StackState.load(state_path).alive()
        if running:
            print(
                f"The local stack is already up ({len(running)} processes); "
                f"`source {directory / ENV_FILE}` to use it, or `make dev-down` to stop it."
            )
            return 0
        # Left behind by a stack that died (a reboot, say): clear it and start afresh.
        StackState.load(state_path).stop()
        shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True, exist_ok=True)
    state = StackState()
    try:
        variables = _start_all(directory, state)
    except BaseException:
        state.stop()
        raise
    finally:
        state.save(state_path)
    env_path = directory / ENV_FILE
    env_path.touch(mode=0o600)
    env_path.write_text(env_lines(variables))
    print(f"The local stack is up; run `source {env_path}` to use it, `make dev-down` to stop it.")
    for name in ("KUBECONFIG", "STRIPE_API_BASE", "STRIPE_MOCK_BASE", "DATABASE_URL"):
        print(f"  {name}={variables[name]}")
    print(
        "Install the chart on the node with: helm install stripe-webhook-operator "
        'charts/stripe-webhook-operator -n stripe-system --create-namespace -f "$LOCAL_VALUES" '
        "--wait"
    )
    return 0


def _start_all(directory: Path, state: StackState) -> dict[str, str]:
    # Imported here so that `down` works even while a component's module is broken.
    from devstack.services.postgres import SHUTDOWN_SIGNALS, PostgresServer
    from devstack.services.stripe_mock import StripeMock

    node = _start_node(directory, state)
    mock = StripeMock(directory / "stripe-mock")
    _start(state, "stripe-mock", mock.start, lambda: _pid_list(mock))
    postgres = PostgresServer(directory / "postgres")
    try:
        # A fast shutdown: the smart one would wait for clients a developer left open.
        fast = int(SHUTDOWN_SIGNALS["fast"])
        _start(state, "postgres", postgres.start, lambda: _pid_list(postgres), fast)
    finally:
        if postgres.cluster_dir is not None:
            state.cleanup.append(str(postgres.cluster_dir))
    path = os.environ.get("PATH", "")
    return {
        "PATH": os.pathsep.join([str(TOOLS_BIN), str(REPO_ROOT / ".venv" / "bin"), path]),
        "PYTHONPATH": str(REPO_ROOT / "stack"),
        "DEVSTACK_DIR": str(directory),
        "KUBECONFIG": str(node["kubeconfig"]),
        # kubectl's discovery cache for this throwaway cluster stays with the stack, not in ~/.kube.
        "KUBECACHEDIR": str(directory / "kube-cache"),
        "KUBE_SERVER": str(node["server"]),
        "STRIPE_API_BASE": str(node["stripe_api_base"]),
        "STRIPE_API_BASE_IN_CLUSTER": str(node["stripe_api_base_in_cluster"]),
        "STRIPE_API_KEY": new_stripe_api_key(),
        "STRIPE_MOCK_BASE": mock.base_url,
        "DATABASE_URL": postgres.new_database(),
        "POSTGRES_URL": postgres.url,
        "LOCAL_VALUES": str(node["values"]),
    }


def _start_node(directory: Path, state: StackState) -> dict[str, Any]:
    """Start the node's owner and wait until it reports the node up; record its PID (and, as
    a fallback should it die, those of the processes it leads)."""
    import sys

    from devstack.node.serve import READY_FILE
    from devstack.processes import ManagedProcess, stack_env

    owner = ManagedProcess(
        "node",
        [sys.executable, "-m", "devstack.node.serve", str(directory)],
        directory / "node.log",
        env=stack_env(),
    ).start()
    ready = directory / READY_FILE
    deadline = time.monotonic() + NODE_START_TIMEOUT
    try:
        while not ready.exists():
            owner.check_alive()
            if time.monotonic() > deadline:
                raise StackError(f"The node did not come up in {NODE_START_TIMEOUT:.0f} s.")
            time.sleep(0.25)
    finally:
        info: dict[str, Any] = json.loads(ready.read_text()) if ready.exists() else {}
        # Newest first on stop: the owner (which stops them all), then whatever it left.
        state.processes += [Started("node-process", int(pid)) for pid in info.get("pids", [])]
        state.processes.append(Started("node", owner.pid, stop_timeout=NODE_STOP_TIMEOUT))
    return info


def _start(
    state: StackState,
    name: str,
    start: Callable[[], object],
    pids: Callable[[], list[int]],
    stop_signal: int = signal.SIGTERM,
) -> None:
    """Start one component and record its processes, even those of a start that failed."""
    try:
        start()
    finally:
        state.processes += [Started(name, pid, stop_signal) for pid in pids()]


def _pid_list(component: HasPid) -> list[int]:
    with contextlib.suppress(RuntimeError):  # raised by `.pid` when it never started
        return [component.pid]
    return []


def register(name: str, pid: int, directory: Path | None = None) -> None:
    """Record a process started against the running stack (a projector, a receiver) so that
    `down` stops it too; it must lead its own process group (`start_new_session`)."""
    state_path = (directory or dev_dir()) / STATE_FILE
    if not state_path.exists():
        raise StackError(f"The local stack is not up (no {state_path}); run `make dev-up` first.")
    state = StackState.load(state_path)
    state.processes.append(Started(name, pid))
    state.save(state_path)


def down(directory: Path | None = None) -> int:
    """Stop every process `up` recorded and delete the dev folder; return an exit code."""
    directory = directory or dev_dir()
    state_path = directory / STATE_FILE
    if not state_path.exists():
        print(f"The local stack is not up (no {state_path}).")
        shutil.rmtree(directory, ignore_errors=True)
        return 0
    state = StackState.load(state_path)
    state.stop()
    left = state.alive()
    if left:
        names = ", ".join(f"{started.name} (PID {started.pid})" for started in left)
        print(f"Could not stop {names}; stop them by PID and run `make dev-down` again.")
        return 1
    shutil.rmtree(directory, ignore_errors=True)
    print("The local stack is down.")
    return 0


def status(directory: Path | None = None) -> int:
    """Print whether the stack is up; exit code 0 when every recorded process runs."""
    directory = directory or dev_dir()
    state_path = directory / STATE_FILE
    if not state_path.exists():
        print("The local stack is not up.")
        return 1
    state = StackState.load(state_path)
    running = {started.pid for started in state.alive()}
    for started in state.processes:
        print(
            f"  {started.name:16} PID {started.pid:<8} {'up' if started.pid in running else 'gone'}"
        )
    return 0 if len(running) == len(state.processes) else 1
