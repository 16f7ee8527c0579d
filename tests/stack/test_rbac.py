"""RBAC is enforced on the local control plane, for impersonated ServiceAccounts and for
ServiceAccount tokens issued through the TokenRequest API (how the operator runs)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from devstack.cluster.kubectl import Kubectl
from devstack.processes import wait_until

pytestmark = pytest.mark.integration

# RBAC reads Roles through an informer: a new binding takes effect after a short lag.
BINDING_TIMEOUT = 30.0
ACCOUNT = "reader"


def _list_configmaps(
    kubectl: Kubectl, namespace: str, *flags: str
) -> subprocess.CompletedProcess[str]:
    return kubectl("get", "configmaps", f"--namespace={namespace}", *flags, check=False)


def _impersonating(namespace: str) -> str:
    return f"--as=system:serviceaccount:{namespace}:{ACCOUNT}"


def _grant_configmap_reads(kubectl: Kubectl, namespace: str) -> None:
    ns = f"--namespace={namespace}"
    kubectl("create", "role", "configmap-reader", ns, "--verb=get,list", "--resource=configmaps")
    kubectl(
        "create",
        "rolebinding",
        "configmap-reader",
        ns,
        "--role=configmap-reader",
        f"--serviceaccount={namespace}:{ACCOUNT}",
    )


def test_impersonated_service_account_without_role_is_forbidden(
    kubectl: Kubectl, kube_namespace: str
) -> None:
    kubectl("create", "serviceaccount", ACCOUNT, f"--namespace={kube_namespace}")

    refused = _list_configmaps(kubectl, kube_namespace, _impersonating(kube_namespace))

    assert refused.returncode != 0
    assert "(Forbidden)" in refused.stderr
    assert f'"system:serviceaccount:{kube_namespace}:{ACCOUNT}" cannot list' in refused.stderr


def test_impersonated_service_account_with_role_binding_is_allowed(
    kubectl: Kubectl, kube_namespace: str
) -> None:
    kubectl("create", "serviceaccount", ACCOUNT, f"--namespace={kube_namespace}")

    _grant_configmap_reads(kubectl, kube_namespace)

    wait_until(
        lambda: (
            _list_configmaps(kubectl, kube_namespace, _impersonating(kube_namespace)).returncode
            == 0
        ),
        timeout=BINDING_TIMEOUT,
        what="the RoleBinding for the impersonated ServiceAccount",
    )


def test_service_account_token_authenticates_as_the_account_under_rbac(
    kubectl: Kubectl, kube_namespace: str, tmp_path: Path
) -> None:
    kubectl("create", "serviceaccount", ACCOUNT, f"--namespace={kube_namespace}")
    account = kubectl.as_service_account(kube_namespace, ACCOUNT, tmp_path / "kubeconfig")

    whoami = account("auth", "whoami", "-o=jsonpath={.status.userInfo.username}")
    refused = _list_configmaps(account, kube_namespace)
    _grant_configmap_reads(kubectl, kube_namespace)

    assert whoami.stdout == f"system:serviceaccount:{kube_namespace}:{ACCOUNT}"
    assert "(Forbidden)" in refused.stderr
    wait_until(
        lambda: _list_configmaps(account, kube_namespace).returncode == 0,
        timeout=BINDING_TIMEOUT,
        what="the RoleBinding for the ServiceAccount token",
    )
