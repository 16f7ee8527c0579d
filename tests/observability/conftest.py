"""Fixtures of the observability tests: the operator tests' scene (a namespace with a fresh
Stripe account, operators stopped by PID) and the real receiver fed by the Secret projector."""

from __future__ import annotations

from tests.operator.conftest import receiver, scene, stripewebhook_crd

__all__ = ["receiver", "scene", "stripewebhook_crd"]
