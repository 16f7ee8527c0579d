"""The command lines the chart writes are ones the two programs accept: the operator's parser
takes every flag for every values file, and the receiver serves with its Deployment's command."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from devstack.processes import REPO_ROOT, ManagedProcess, free_port, wait_until
from stripe_webhook_operator.settings import parse_settings
from tests.chart.rendering import (
    NAMESPACE,
    VALUES_DIR,
    VALUES_FILES,
    Manifest,
    container,
    find,
    render,
)

# Receiver flags passed as the chart writes them: its connection limits.
KEPT = {
    "--max-connections",
    "--max-header-bytes",
    "--client-timeout",
    "--keep-alive-timeout",
    "--max-pending-body-bytes",
}


def _env_values(c: Manifest) -> dict[str, str]:
    return {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}


@pytest.mark.parametrize("values", VALUES_FILES)
def test_operator_parses_the_charts_arguments(values: str) -> None:
    manifests = render(values)
    operator = container(find(manifests, "Deployment", "-operator"), "operator")
    assert operator["command"] == ["stripe-webhook-operator"]
    settings = parse_settings(operator["args"], environ=_env_values(operator))
    service = find(manifests, "Service", "-receiver")["metadata"]["name"]
    assert settings.receiver_service == (NAMESPACE, service)
    assert settings.receiver_url == f"http://{service}.{NAMESPACE}.svc:8000"
    assert settings.receiver_namespace == NAMESPACE
    watched = yaml.safe_load((VALUES_DIR / f"{values}.yaml").read_text()) or {}
    assert settings.namespaces == tuple(sorted(watched.get("watchNamespaces", [])))
    assert settings.clusterwide == (not settings.namespaces)
    replicas = find(manifests, "Deployment", "-operator")["spec"]["replicas"]
    assert (settings.peering is not None) == (replicas > 1)


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[ManagedProcess, int]]:
    """The receiver started with the chart's command, arguments and environment; only the
    addresses and paths that belong to a pod are moved into the test's directory."""
    deployment = find(render(), "Deployment", "-receiver")
    spec = container(deployment, "receiver")
    env = _env_values(spec)
    database = env["STRIPE_WEBHOOK_RECEIVER_DATABASE_URL"]
    assert database.startswith("sqlite:////")
    env["STRIPE_WEBHOOK_RECEIVER_DATABASE_URL"] = f"sqlite:///{tmp_path / 'receiver.db'}"
    secrets_dir = tmp_path / "secrets"
    secrets_dir.mkdir()
    port = free_port()
    moved = {
        "--secrets-dir": str(secrets_dir),
        "--host": "127.0.0.1",  # the pod listens on 0.0.0.0; tests stay on loopback
        "--port": str(port),
    }
    args = []
    for arg in spec["args"]:
        flag = arg.split("=", 1)[0]
        assert flag in moved or flag in KEPT, f"the test does not know the receiver flag {flag}"
        args.append(f"{flag}={moved[flag]}" if flag in moved else arg)
    assert {a.split("=", 1)[0] for a in args} >= KEPT
    (command,) = spec["command"]
    argv = [str(REPO_ROOT / ".venv" / "bin" / command), *args]
    env |= {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    process = ManagedProcess("receiver", argv, tmp_path / "receiver.log", env=env).start()
    try:
        yield process, port
    finally:
        process.stop()


def test_receiver_serves_with_the_charts_command(receiver: tuple[ManagedProcess, int]) -> None:
    process, port = receiver

    def answers(path: str) -> bool:
        process.check_alive()
        return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=2).status_code == 200

    # The probes the chart configures: liveness /healthz, readiness /readyz.
    wait_until(lambda: answers("/healthz"), timeout=30, what="receiver /healthz")
    wait_until(lambda: answers("/readyz"), timeout=30, what="receiver /readyz")
