"""kopf handlers: each a few lines that hand over to runtime.py's loop (which runs
reconcile.py's passes) or to deletion.py.

Every StripeWebhook gets one daemon that does all of its work (create, rotate, correct drift)
one pass at a time; change handlers and the Secret watch only wake it up. Nothing is returned
from a handler: kopf would write it into status.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import kopf

from stripe_webhook_operator import constants as c
from stripe_webhook_operator import deletion, kopf_login, reconcile
from stripe_webhook_operator.exceptions import OperatorError
from stripe_webhook_operator.runtime import Runtime, run_loop

DELETION_RETRY = 10.0
RESOURCE = (c.GROUP, c.VERSION, c.PLURAL)


def receiver_secret_deleted(rt: Runtime) -> None:
    """When the receiver's aggregated Secret is deleted, forget its copy and wake every
    webhook: each pass writes its entry back (the first recreates the Secret)."""
    assert rt.receiver is not None
    rt.receiver.forget()
    for namespace, name in list(rt.wakeups):
        rt.wake(namespace, name)


def register(registry: kopf.OperatorRegistry, rt: Runtime) -> None:
    """Register the operator's handlers in `registry`, bound to `rt`."""
    # A registry of our own has no login handler: kopf_login.py gives it one.
    kopf_login.register(registry, rt.settings.namespaces)

    @kopf.daemon(*RESOURCE, registry=registry, id="webhook_loop", cancellation_timeout=5.0)
    async def webhook_loop(
        namespace: str | None, name: str, stopped: kopf.DaemonStopped, **_: Any
    ) -> None:
        """When a StripeWebhook exists, reconcile it now and again after every wait."""
        await run_loop(rt, namespace or "", name, stopped, reconcile.reconcile)

    @kopf.on.update(*RESOURCE, registry=registry, id="webhook_changed")
    async def webhook_changed(namespace: str | None, name: str, **_: Any) -> None:
        """When a StripeWebhook's spec, labels or annotations change, reconcile it at once."""
        rt.wake(namespace or "", name)

    @kopf.on.delete(*RESOURCE, registry=registry, id="webhook_deleted")
    async def webhook_deleted(namespace: str | None, name: str, body: Any, **_: Any) -> None:
        """When a StripeWebhook is deleted, apply its deletion policy before it goes."""
        async with rt.lock(namespace or "", name):
            try:
                await deletion.finalize(rt, body)
            except OperatorError as exc:
                raise kopf.TemporaryError(str(exc), delay=DELETION_RETRY) from exc

    @kopf.index(*RESOURCE, registry=registry, id="api_key_secrets")
    async def api_key_secrets(namespace: str | None, name: str, spec: Any, **_: Any) -> object:
        """When a StripeWebhook is seen, index it by the Secret holding its API key."""
        return {(namespace, str((spec.get("apiKeySecretRef") or {}).get("name"))): name}

    @kopf.on.event("", "v1", "secrets", registry=registry, id="secret_event")
    async def secret_event(
        namespace: str | None,
        name: str,
        labels: Mapping[str, str],
        meta: Any,
        type: str | None,  # kopf passes the watch event type under this name
        **kwargs: Any,
    ) -> None:
        """When a Secret that a StripeWebhook reads or owns changes, reconcile that webhook,
        unless its last pass already read or wrote this version of the Secret (the event of
        the operator's own write, above all)."""
        index: kopf.Index[tuple[str, str], str] = kwargs["api_key_secrets"]
        ns = namespace or ""
        receiver_secret = (rt.settings.receiver_namespace, rt.settings.receiver_secret_name)
        if type == "DELETED" and (ns, name) == receiver_secret:
            receiver_secret_deleted(rt)
            return
        version = str(meta.get("resourceVersion") or "")
        webhooks = set(index.get((ns, name), []))
        if labels.get(c.LABEL_MANAGED_BY) == c.LABEL_MANAGED_BY_VALUE:
            owner = labels.get(c.LABEL_WEBHOOK_NAME)
            if owner:
                webhooks.add(owner)
        for webhook in webhooks:
            if type == "DELETED":
                rt.wake(ns, webhook)
            elif not rt.has_seen((ns, webhook), (ns, name), version):
                rt.wake(ns, webhook, (ns, name), version)
