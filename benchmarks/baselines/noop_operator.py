"""The floor of the operator benchmark: a kopf operator that does nothing but say Ready.

It watches the same StripeWebhooks with the same kopf storage settings as ours (progress and
diff-base in annotations, a finalizer because it has a deletion handler) and marks each one
Ready with one status patch, so time-to-Ready and Kubernetes calls per object measure kopf
itself. Run with `kopf run benchmarks/baselines/noop_operator.py --namespace NS --standalone`.
"""

from __future__ import annotations

import datetime
from typing import Any

import kopf

GROUP, VERSION, PLURAL = "stripe.operator.dev", "v1alpha1", "stripewebhooks"


@kopf.on.startup()
def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    """When the operator starts, store its state where ours does: in annotations."""
    settings.persistence.finalizer = f"{GROUP}/noop-finalizer"
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=GROUP, key="last-handled-configuration"
    )
    settings.posting.enabled = False


@kopf.on.create(GROUP, VERSION, PLURAL)
def mark_ready(meta: kopf.Meta, patch: kopf.Patch, **_: Any) -> None:
    """When a StripeWebhook appears, mark it Ready without doing anything else."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    patch.status["conditions"] = [
        {
            "type": "Ready",
            "status": "True",
            "reason": "NoOp",
            "message": "The no-op baseline operator saw this object.",
            "observedGeneration": meta.get("generation", 1),
            "lastTransitionTime": now,
        }
    ]


@kopf.on.delete(GROUP, VERSION, PLURAL)
def forget(**_: Any) -> None:
    """When a StripeWebhook is deleted, let it go."""
