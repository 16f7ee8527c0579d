"""Talking to a cluster: what tests need of one, a user-given cluster, and the built kubectl."""

from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import yaml

from devstack.processes import StackError, tool

# How long a ServiceAccount token made by `Kubectl.as_service_account` lives.
SERVICE_ACCOUNT_TOKEN_DURATION = "2h"
CLUSTER_NAME = "devstack"


def write_kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> None:
    """Write a one-context kubeconfig (owner-only: it may hold a token) from a `cluster`
    entry (server, CA) and a `user` entry (client certificate or token)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": CLUSTER_NAME, "cluster": cluster}],
        "users": [{"name": CLUSTER_NAME, "user": user}],
        "contexts": [
            {"name": CLUSTER_NAME, "context": {"cluster": CLUSTER_NAME, "user": CLUSTER_NAME}}
        ],
        "current-context": CLUSTER_NAME,
    }
    path.touch(mode=0o600)
    path.write_text(yaml.safe_dump(config, sort_keys=False))


class Cluster(Protocol):
    """What tests need of a cluster: an admin kubeconfig and the API server URL."""

    @property
    def kubeconfig(self) -> Path: ...

    @property
    def server(self) -> str: ...


@dataclass(frozen=True)
class ExternalCluster:
    """A cluster named by a kubeconfig the user gave (E2E_KUBECONFIG)."""

    kubeconfig: Path
    server: str

    @classmethod
    def from_kubeconfig(cls, path: Path) -> ExternalCluster:
        """Read the server URL of the kubeconfig's current context."""
        config = yaml.safe_load(path.read_text())
        context_name = config.get("current-context")
        contexts = {item["name"]: item["context"] for item in config.get("contexts") or []}
        clusters = {item["name"]: item["cluster"] for item in config.get("clusters") or []}
        if context_name not in contexts:
            raise StackError(
                f"Kubeconfig {path} has no context '{context_name}'; "
                "set `current-context` to one of its contexts."
            )
        return cls(
            kubeconfig=path, server=str(clusters[contexts[context_name]["cluster"]]["server"])
        )


def api_client(kubeconfig: Path, timeout: float = 10.0) -> httpx.Client:
    """An HTTP client for the API server of a kubeconfig this stack wrote (its current
    context: a CA file, and a client certificate and key file or a token), for code that reads
    the API more often than starting kubectl each time would allow."""
    config = yaml.safe_load(kubeconfig.read_text())
    contexts = {item["name"]: item["context"] for item in config.get("contexts") or []}
    context = contexts[config["current-context"]]
    clusters = {item["name"]: item["cluster"] for item in config.get("clusters") or []}
    users = {item["name"]: item["user"] for item in config.get("users") or []}
    cluster, user = clusters[context["cluster"]], users[context["user"]]
    if "certificate-authority" not in cluster:
        raise StackError(
            f"Kubeconfig {kubeconfig} names no `certificate-authority` file; write the CA to "
            "a file and name it there."
        )
    tls = ssl.create_default_context(cafile=str(cluster["certificate-authority"]))
    headers = {}
    if "client-certificate" in user:
        tls.load_cert_chain(str(user["client-certificate"]), str(user["client-key"]))
    elif "token" in user:
        headers["Authorization"] = f"Bearer {user['token']}"
    return httpx.Client(
        base_url=str(cluster["server"]), verify=tls, headers=headers, timeout=timeout
    )


class KubectlError(subprocess.CalledProcessError):
    """kubectl exited non-zero; the message names the verb and kubectl's own complaint."""

    def __str__(self) -> str:
        # Only the verb and resource: later arguments may carry literal secret values.
        verb = " ".join(str(arg) for arg in list(self.cmd)[1:3])
        stderr = (self.stderr or "").strip()
        return f"`kubectl {verb} ...` exited {self.returncode}: {stderr}"


@dataclass(frozen=True)
class Kubectl:
    """Runs the built kubectl against one kubeconfig, its caches kept in `cache_dir`."""

    kubeconfig: Path
    cache_dir: Path

    def __call__(
        self, *args: str, input: str | None = None, check: bool = True, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run `kubectl ARGS`; raise KubectlError on a non-zero exit unless `check` is false."""
        # Environment rather than flags: kubectl finds plugins only when no flag comes first.
        env = dict(os.environ, KUBECONFIG=str(self.kubeconfig), KUBECACHEDIR=str(self.cache_dir))
        argv = [str(tool("kubectl")), *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, env=env, timeout=timeout
        )
        if check and result.returncode != 0:
            raise KubectlError(result.returncode, argv, result.stdout, result.stderr)
        return result

    @contextlib.contextmanager
    def temporary_namespace(self, name: str) -> Iterator[str]:
        """Create namespace `name` for the `with` block; delete it (without waiting) after."""
        self("create", "namespace", name)
        try:
            yield name
        finally:
            self("delete", "namespace", name, "--wait=false", "--ignore-not-found")

    def as_service_account(self, namespace: str, name: str, kubeconfig: Path) -> Kubectl:
        """Write `kubeconfig` authenticating with a token of ServiceAccount `namespace/name`
        (TokenRequest API, as a Pod's projected token) and return a kubectl that uses it."""
        token = self(
            "create",
            "token",
            name,
            f"--namespace={namespace}",
            f"--duration={SERVICE_ACCOUNT_TOKEN_DURATION}",
        ).stdout.strip()
        view = json.loads(
            self("config", "view", "--raw", "--minify", "--flatten", "-o=json").stdout
        )
        write_kubeconfig(kubeconfig, view["clusters"][0]["cluster"], {"token": token})
        return Kubectl(kubeconfig, self.cache_dir)
