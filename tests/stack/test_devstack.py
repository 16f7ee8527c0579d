"""`python -m devstack up|down`: a background stack described by an env file, and gone after."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from devstack.devenv import StackState, Started, env_lines, register
from devstack.processes import REPO_ROOT, pid_running

COMMAND_TIMEOUT = 600


def sourced(env_file: Path) -> dict[str, str]:
    """The environment a POSIX shell has after `source env_file`."""
    result = subprocess.run(
        ["bash", "-c", f"source {env_file} && env -0"],
        capture_output=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
        timeout=30,
    )
    pairs = (item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
    return dict(pairs)


def test_env_lines_survive_a_shell(tmp_path: Path) -> None:
    values = {"PLAIN": "a", "SPACED": "a b", "QUOTED": 'it\'s "x" $HOME `id`'}
    env_file = tmp_path / "env"
    env_file.write_text(env_lines(values))

    seen = sourced(env_file)

    assert {name: seen[name] for name in values} == values


# A child that dies of SIGINT even when the suite was started with SIGINT ignored (a shell's
# background job is), and says so only once that holds.
SIGINT_DEFAULT_SLEEPER = (
    "import signal, sys, time\n"
    "signal.signal(signal.SIGINT, signal.SIG_DFL)\n"
    "print('ready', flush=True)\n"
    "time.sleep(60)\n"
)


def test_stop_ends_a_recorded_process_group(tmp_path: Path) -> None:
    with subprocess.Popen(
        [sys.executable, "-c", SIGINT_DEFAULT_SLEEPER],
        start_new_session=True,
        stdout=subprocess.PIPE,
        text=True,
    ) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == "ready\n"
            state = StackState(processes=[Started("sleeper", child.pid, int(signal.SIGINT))])
            state.cleanup.append(str(tmp_path / "gone"))
            (tmp_path / "gone").mkdir()
            state.save(tmp_path / "pids.json")

            StackState.load(tmp_path / "pids.json").stop()

            assert child.wait(timeout=5) == -signal.SIGINT
        finally:
            if child.poll() is None:
                child.kill()
    assert not pid_running(child.pid)
    assert not (tmp_path / "gone").exists()


def test_a_reused_pid_is_left_alone(tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    try:
        # The record of an earlier process that had the same PID (before a reboot, say).
        state = StackState(processes=[Started("old", stranger.pid, identity="other-boot:1")])

        state.stop()

        assert state.alive() == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait(timeout=5)


def devstack(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "devstack", command],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO_ROOT,
        timeout=COMMAND_TIMEOUT,
        check=False,
    )


@pytest.fixture
def dev_env(tmp_path: Path) -> Iterator[dict[str, str]]:
    env = dict(os.environ, DEVSTACK_DIR=str(tmp_path / "dev"), PYTHONPATH=str(REPO_ROOT / "stack"))
    try:
        yield env
    finally:
        # Whatever the test did, leave nothing running.
        devstack("down", env)


@pytest.mark.integration
def test_up_writes_a_working_env_and_down_stops_everything(dev_env: dict[str, str]) -> None:
    dev = Path(dev_env["DEVSTACK_DIR"])

    started = devstack("up", dev_env)
    assert started.returncode == 0, started.stdout + started.stderr
    pids = [entry["pid"] for entry in json.loads((dev / "pids.json").read_text())["processes"]]
    env = sourced(dev / "env")

    namespaces = subprocess.run(
        ["kubectl", "get", "namespace", "default", "-o", "name"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=30,
    )
    assert namespaces.stdout.strip() == "namespace/default"
    # A real node, reached from this shell through the env file alone.
    nodes = subprocess.run(
        ["kubectl", "get", "nodes", "-o", "jsonpath={.items[*].status.conditions[-1:].type}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=30,
    )
    assert nodes.stdout.strip() == "Ready"
    values = Path(env["LOCAL_VALUES"]).read_text()
    assert "localhost/stripe-webhook-operator" in values
    assert env["STRIPE_API_BASE_IN_CLUSTER"] in values
    auth = {"Authorization": f"Bearer {env['STRIPE_API_KEY']}"}
    endpoints = httpx.get(f"{env['STRIPE_API_BASE']}/v1/webhook_endpoints", headers=auth)
    assert endpoints.status_code == 200
    assert endpoints.json()["object"] == "list"
    mocked = httpx.get(f"{env['STRIPE_MOCK_BASE']}/v1/webhook_endpoints", headers=auth)
    assert mocked.status_code == 200
    with psycopg.connect(env["DATABASE_URL"]) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)

    again = devstack("up", dev_env)
    assert again.returncode == 0
    assert "already up" in again.stdout
    again_pids = [
        entry["pid"] for entry in json.loads((dev / "pids.json").read_text())["processes"]
    ]
    assert again_pids == pids

    extra = subprocess.Popen(["sleep", "300"], start_new_session=True)
    register("extra", extra.pid, dev)

    stopped = devstack("down", dev_env)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert [pid for pid in [*pids, extra.pid] if pid_running(pid)] == []
    assert extra.wait(timeout=5) == -signal.SIGTERM
    assert not dev.exists()
