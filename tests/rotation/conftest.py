"""Fixtures of the rotation tests: the operator tests' scene (a namespace with a fresh Stripe
account) and real receiver, with the kubectl plugin on PATH."""

from __future__ import annotations

import os

import pytest

from devstack.processes import REPO_ROOT
from tests.operator.conftest import receiver, scene, stripewebhook_crd

__all__ = ["receiver", "scene", "stripewebhook_crd"]


@pytest.fixture(autouse=True)
def plugin_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """kubectl finds `kubectl-stripe` on PATH, as an admin's shell would."""
    venv_bin = REPO_ROOT / ".venv" / "bin"
    monkeypatch.setenv("PATH", f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}")
