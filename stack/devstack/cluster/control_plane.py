"""A real Kubernetes control plane: etcd, kube-apiserver with RBAC, kube-controller-manager.

Alone (no node), everything listens on 127.0.0.1 and the controller manager runs only the
garbage-collector and namespace controllers: nothing in a Pod ever runs, and it starts fast.
For a node (`node=NodeAddresses(...)`, started from inside the node's network namespace by
devstack.node.cluster) it serves the node's address, adds kube-scheduler and the controllers
a workload needs, and the API server authorizes kubelets (Node authorizer, NodeRestriction)
and reaches them for logs and exec.

Started the way controller-runtime's envtest starts one (its own CA, a client certificate in
`system:masters`, ServiceAccount signing keys, free ports), so that the suite, `make dev-up`
and `make demo` talk to the same API server a cluster runs. Every file it writes is under
its workdir; every process it starts is stopped by PID.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from devstack.cluster.certs import CertificateAuthority, signing_key_pair
from devstack.cluster.kubectl import write_kubeconfig
from devstack.processes import ManagedProcess, StackError, free_port, tool

LOOPBACK = "127.0.0.1"
SERVING_HOSTS = ("127.0.0.1", "localhost")
# The issuer only names the token signer; nothing ever fetches it.
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
# Cluster IPs handed to Services. Without a node they are only recorded; on the node kube-proxy
# routes them inside its network namespace. The first is the `kubernetes` Service's.
SERVICE_CLUSTER_IP_RANGE = "10.0.0.0/24"
KUBERNETES_SERVICE_IP = "10.0.0.1"
KUBERNETES_SERVICE_NAMES = (
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
)
# Inside the node's own network namespace every port is the stack's: fixed ones, as a
# cluster uses.
NODE_APISERVER_PORT = 6443
# What a workload on the node needs: Deployments and their ReplicaSets, Service endpoints,
# ServiceAccounts with their tokens and CA, volumes bound to claims, PodDisruptionBudgets,
# node health, and clean-up of what was deleted.
NODE_CONTROLLERS = (
    "garbage-collector-controller",
    "namespace-controller",
    "deployment-controller",
    "replicaset-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "endpointslice-mirroring-controller",
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "persistentvolume-binder-controller",
    "persistentvolumeclaim-protection-controller",
    "persistentvolume-protection-controller",
    "node-lifecycle-controller",
    "pod-garbage-collector-controller",
    "disruption-controller",
    "clusterrole-aggregation-controller",
)
ADMIN_USER = "devstack-admin"
READY_TIMEOUT = 60.0
# How many times start() picks fresh ports after a port taken between probe and bind.
PORT_ATTEMPTS = 3
# Requests of ServiceAccounts only (no person or component uses one here), each logged once
# answered (a watch also when it starts): tests read what a chart's ServiceAccount did, and
# the rest of the traffic costs nothing.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    userGroups: ["system:serviceaccounts"]
  - level: None
"""


@dataclass(frozen=True)
class NodeAddresses:
    """Where a control plane that serves a node listens: the node's own address, inside the
    node's network namespace (devstack.node.network)."""

    node_ip: str


@dataclass(frozen=True)
class Pki:
    """The cluster's CA and the PEM files the control plane's components read."""

    directory: Path
    ca: CertificateAuthority
    ca_cert: Path
    serving_cert: Path
    serving_key: Path
    admin_cert: Path
    admin_key: Path
    controller_manager_cert: Path
    controller_manager_key: Path
    service_account_public: Path
    service_account_key: Path

    @classmethod
    def create(cls, directory: Path, serving_hosts: Sequence[str] = SERVING_HOSTS) -> Pki:
        """Make a fresh CA and every certificate and key the control plane needs."""
        ca = CertificateAuthority("devstack-ca")
        ca_cert, _ = ca.key_pair.write(directory, "ca")
        serving = ca.issue("kube-apiserver", hosts=serving_hosts, server=True)
        serving_cert, serving_key = serving.write(directory, "serving")
        admin = ca.issue(ADMIN_USER, organizations=["system:masters"], client=True)
        admin_cert, admin_key = admin.write(directory, "admin")
        manager = ca.issue(
            "system:kube-controller-manager", organizations=["system:masters"], client=True
        )
        manager_cert, manager_key = manager.write(directory, "controller-manager")
        sa_public, sa_key = signing_key_pair().write(directory, "service-account", ".pub")
        return cls(
            directory=directory,
            ca=ca,
            ca_cert=ca_cert,
            serving_cert=serving_cert,
            serving_key=serving_key,
            admin_cert=admin_cert,
            admin_key=admin_key,
            controller_manager_cert=manager_cert,
            controller_manager_key=manager_key,
            service_account_public=sa_public,
            service_account_key=sa_key,
        )

    def client(self, stem: str, user: str, groups: Sequence[str] = ()) -> tuple[Path, Path]:
        """Issue a client certificate for `user` in `groups`; return (cert, key) paths."""
        pair = self.ca.issue(user, organizations=groups, client=True)
        return pair.write(self.directory, stem)

    def client_kubeconfig(
        self, path: Path, server: str, stem: str, user: str, groups: Sequence[str] = ()
    ) -> Path:
        """Write a kubeconfig for `server` authenticating as `user` in `groups` (a client
        certificate issued now); return its path."""
        cert, key = self.client(stem, user, groups)
        write_kubeconfig(
            path,
            {"server": server, "certificate-authority": str(self.ca_cert)},
            {"client-certificate": str(cert), "client-key": str(key)},
        )
        return path

    def server(self, stem: str, name: str, hosts: Sequence[str]) -> tuple[Path, Path]:
        """Issue a serving certificate for `hosts`; return (cert, key) paths."""
        return self.ca.issue(name, hosts=hosts, server=True).write(self.directory, stem)


class ControlPlane:
    """etcd + kube-apiserver + kube-controller-manager, all on 127.0.0.1 free ports; with
    `node`, also kube-scheduler, the API server on the node's address."""

    def __init__(
        self,
        workdir: Path,
        apiserver_args: Sequence[str] = (),
        node: NodeAddresses | None = None,
    ) -> None:
        self.workdir = workdir
        self.node = node
        self.kubeconfig = workdir / "kubeconfig"
        self.server = ""
        self.etcd_url = ""
        # JSON lines, one audit event per line (see AUDIT_POLICY).
        self.audit_log = workdir / "logs" / "kube-apiserver-audit.log"
        self._apiserver_args = tuple(apiserver_args)
        self.start_seconds: float | None = None
        self._processes: list[ManagedProcess] = []
        self._pki: Pki | None = None
        self._context: ssl.SSLContext | None = None

    def __repr__(self) -> str:
        return f"ControlPlane(server={self.server!r}, workdir={str(self.workdir)!r})"

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def pids(self) -> list[int]:
        """PIDs of the processes started (each one leads its own process group)."""
        return [process.pid for process in self._processes if process.popen is not None]

    def start(self) -> ControlPlane:
        """Start every component, wait until the API server is ready, and return self."""
        began = time.monotonic()
        self.workdir.mkdir(parents=True, exist_ok=True)
        for home in ("home", "tmp"):
            (self.workdir / home).mkdir(exist_ok=True)
        self._pki = Pki.create(self.workdir / "pki", self._serving_hosts())
        self._context = None
        for attempt in range(1, PORT_ATTEMPTS + 1):
            try:
                self._launch()
            except StackError as exc:
                port_taken = "address already in use" in str(exc)
                self.stop()
                if not port_taken or attempt == PORT_ATTEMPTS:
                    raise
            except BaseException:
                self.stop()
                raise
            else:
                break
        self.start_seconds = time.monotonic() - began
        return self

    @property
    def pki(self) -> Pki:
        """The cluster's CA and certificates (a node issues its own from it)."""
        if self._pki is None:
            raise StackError("the control plane was never started")
        return self._pki

    def _serving_hosts(self) -> tuple[str, ...]:
        if self.node is None:
            return SERVING_HOSTS
        return (*SERVING_HOSTS, self.node.node_ip, KUBERNETES_SERVICE_IP, *KUBERNETES_SERVICE_NAMES)

    def stop(self) -> None:
        """Stop every process by PID, newest first, and drop etcd's data (logs stay)."""
        for process in reversed(self._processes):
            process.stop()
        self._processes.clear()
        shutil.rmtree(self.workdir / "etcd", ignore_errors=True)

    # --- starting --------------------------------------------------------------------------

    def _launch(self) -> None:
        assert self._pki is not None
        etcd_url = self.etcd_url = self._start_etcd()
        if self.node is None:
            apiserver_port = free_port()
            self.server = f"https://{LOOPBACK}:{apiserver_port}"
        else:
            apiserver_port = NODE_APISERVER_PORT
            self.server = f"https://{self.node.node_ip}:{apiserver_port}"
        self._write_kubeconfig(self.kubeconfig, self._pki.admin_cert, self._pki.admin_key)
        self._start_apiserver(etcd_url, apiserver_port)
        self._wait("kube-apiserver /readyz", lambda: self._get("/readyz") == "ok")
        # Only now: the controller manager gives up if the API server is not healthy within
        # 10 s, which a loaded machine can exceed.
        manager_port = self._start_controller_manager()
        if self.node is None:
            # The node's ServiceAccount controller makes it there.
            self._create_default_service_account()
        else:
            scheduler_port = self._start_scheduler()
            self._wait(
                "kube-scheduler /healthz",
                lambda: self._get("/healthz", f"https://{LOOPBACK}:{scheduler_port}") == "ok",
            )
        self._wait(
            "kube-controller-manager /healthz",
            lambda: self._get("/healthz", f"https://{LOOPBACK}:{manager_port}") == "ok",
        )

    def _write_kubeconfig(self, path: Path, cert: Path, key: Path) -> None:
        assert self._pki is not None
        write_kubeconfig(
            path,
            {"server": self.server, "certificate-authority": str(self._pki.ca_cert)},
            {"client-certificate": str(cert), "client-key": str(key)},
        )

    def _env(self) -> dict[str, str]:
        # Pointing HOME and TMPDIR into the workdir keeps every stray file inside it.
        return dict(
            os.environ,
            HOME=str(self.workdir / "home"),
            TMPDIR=str(self.workdir / "tmp"),
        )

    def _spawn(self, name: str, argv: list[str]) -> None:
        process = ManagedProcess(
            name, argv, self.workdir / "logs" / f"{name}.log", env=self._env(), cwd=self.workdir
        )
        self._processes.append(process.start())

    def _start_etcd(self) -> str:
        client_url = f"http://{LOOPBACK}:{free_port()}"
        peer_url = f"http://{LOOPBACK}:{free_port()}"
        data_dir = self.workdir / "etcd"
        shutil.rmtree(data_dir, ignore_errors=True)
        self._spawn(
            "etcd",
            [
                str(tool("etcd")),
                "--name=devstack",
                f"--data-dir={data_dir}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=devstack={peer_url}",
                "--initial-cluster-state=new",
                "--unsafe-no-fsync",
                # A lone member need not wait a full second before electing itself.
                "--heartbeat-interval=10",
                "--election-timeout=50",
                "--log-level=warn",
            ],
        )
        return client_url

    def _start_apiserver(self, etcd_url: str, port: int) -> None:
        assert self._pki is not None
        pki = self._pki
        policy = self.workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        self._spawn(
            "kube-apiserver",
            [
                str(tool("kube-apiserver")),
                f"--etcd-servers={etcd_url}",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                f"--client-ca-file={pki.ca_cert}",
                f"--service-account-key-file={pki.service_account_public}",
                f"--service-account-signing-key-file={pki.service_account_key}",
                f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
                f"--service-cluster-ip-range={SERVICE_CLUSTER_IP_RANGE}",
                *(
                    self._apiserver_alone_args()
                    if self.node is None
                    else self._apiserver_node_args()
                ),
                "--allow-privileged=true",
                "--profiling=false",
                f"--audit-policy-file={policy}",
                f"--audit-log-path={self.audit_log}",
                *self._apiserver_args,
            ],
        )

    @staticmethod
    def _apiserver_alone_args() -> list[str]:
        return [
            f"--bind-address={LOOPBACK}",
            f"--advertise-address={LOOPBACK}",
            "--authorization-mode=RBAC",
            # No kubelet runs here, so Pods never mount a token; and the controller that
            # creates each namespace's `default` ServiceAccount is not run either.
            "--disable-admission-plugins=ServiceAccount",
            # As hardened clusters do: setting blockOwnerDeletion needs update on the
            # owner's finalizers, so a chart lacking that grant fails here too.
            "--enable-admission-plugins=OwnerReferencesPermissionEnforcement",
            # Endpoints may not hold a loopback address: the reconciler would only log
            # errors trying to publish 127.0.0.1 for the `kubernetes` Service.
            "--endpoint-reconciler-type=none",
        ]

    def _apiserver_node_args(self) -> list[str]:
        assert self.node is not None
        kubelet_cert, kubelet_key = self.pki.client(
            "apiserver-kubelet-client", "kube-apiserver-kubelet-client", ["system:masters"]
        )
        return [
            f"--bind-address={self.node.node_ip}",
            f"--advertise-address={self.node.node_ip}",
            # A kubelet may read and write only what its own Pods need.
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction,OwnerReferencesPermissionEnforcement",
            # Logs, exec and port-forward: the API server dials the kubelet by the node's
            # address (no DNS knows the node's name) and checks its certificate.
            f"--kubelet-client-certificate={kubelet_cert}",
            f"--kubelet-client-key={kubelet_key}",
            f"--kubelet-certificate-authority={self.pki.ca_cert}",
            "--kubelet-preferred-address-types=InternalIP",
        ]

    def _start_controller_manager(self) -> int:
        assert self._pki is not None
        pki = self._pki
        kubeconfig = self.workdir / "controller-manager.kubeconfig"
        self._write_kubeconfig(kubeconfig, pki.controller_manager_cert, pki.controller_manager_key)
        port = free_port()
        self._spawn(
            "kube-controller-manager",
            [
                str(tool("kube-controller-manager")),
                f"--kubeconfig={kubeconfig}",
                *self._controller_manager_node_args(),
                f"--bind-address={LOOPBACK}",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )
        return port

    def _controller_manager_node_args(self) -> list[str]:
        if self.node is None:
            return ["--controllers=garbagecollector,namespace"]
        return [
            f"--controllers={','.join(NODE_CONTROLLERS)}",
            # Tokens of ServiceAccount Secrets are signed with it; Pods' projected tokens
            # carry this CA (the kube-root-ca.crt ConfigMap of every namespace).
            f"--service-account-private-key-file={self.pki.service_account_key}",
            f"--root-ca-file={self.pki.ca_cert}",
        ]

    def _start_scheduler(self) -> int:
        """kube-scheduler, on the node's control plane only: Pods of Deployments need it."""
        kubeconfig = self.pki.client_kubeconfig(
            self.workdir / "scheduler.kubeconfig", self.server, "scheduler", "system:kube-scheduler"
        )
        port = free_port()
        self._spawn(
            "kube-scheduler",
            [
                str(tool("kube-scheduler")),
                f"--kubeconfig={kubeconfig}",
                f"--authentication-kubeconfig={kubeconfig}",
                f"--authorization-kubeconfig={kubeconfig}",
                f"--bind-address={LOOPBACK}",
                f"--secure-port={port}",
                f"--cert-dir={self.workdir / 'pki'}",
                f"--tls-cert-file={self.pki.serving_cert}",
                f"--tls-private-key-file={self.pki.serving_key}",
                "--leader-elect=false",
                "--profiling=false",
            ],
        )
        return port

    def _create_default_service_account(self) -> None:
        """Create `default/default`, which the unrun ServiceAccount controller would make."""
        body = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "default"}}

        def create() -> bool:
            try:
                self._request("POST", "/api/v1/namespaces/default/serviceaccounts", body)
            except urllib.error.HTTPError as exc:
                # 409: it exists already; 404: the `default` namespace is not created yet.
                if exc.code != 409:
                    raise
            return True

        self._wait("the `default` ServiceAccount", create)

    # --- talking to the servers ------------------------------------------------------------

    def _ssl_context(self) -> ssl.SSLContext:
        if self._context is None:
            assert self._pki is not None
            context = ssl.create_default_context(cafile=str(self._pki.ca_cert))
            context.load_cert_chain(str(self._pki.admin_cert), str(self._pki.admin_key))
            self._context = context
        return self._context

    def _request(
        self, method: str, path: str, body: dict[str, Any] | None = None, base: str = ""
    ) -> str:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            (base or self.server) + path,
            data=data,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, context=self._ssl_context(), timeout=5) as reply:
            return str(reply.read().decode())

    def _get(self, path: str, base: str = "") -> str:
        return self._request("GET", path, base=base)

    def _wait(self, what: str, check: Callable[[], bool], timeout: float = READY_TIMEOUT) -> None:
        """Poll `check` until true; fail at once, with its log, if any process has exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in self._processes:
                process.check_alive()
            try:
                if check():
                    return
            except (OSError, http.client.HTTPException):
                pass  # not serving yet (URLError and HTTPError are OSErrors too)
            time.sleep(0.05)
        raise StackError(f"{what} not ready after {timeout:.0f} s")
