"""Hurrying the receiver Pods' Secret volumes after the operator writes their Secret.

A kubelet refreshes a mounted Secret only on its periodic sync of the Pod (`syncFrequency`,
one minute by default, plus its cache's delay), so a new webhook would wait about a minute for
`SecretPropagated`, and a rotation as long before its new endpoint is enabled. A change to
the Pod object makes its kubelet sync the Pod at once, remounting its Secret volumes from the
Secret as the API server now holds it. So after each write of the aggregated Secret, the
operator sets one annotation on every Pod behind the receiver Service to the Secret's new
resourceVersion. It proves nothing: the readiness handshake (receiver_probe.py) stays the
only evidence that a secret arrived, and a failed nudge only leaves the kubelet's own pace.
"""

from __future__ import annotations

import asyncio
import logging

import httpx

from stripe_webhook_operator import constants as c
from stripe_webhook_operator.exceptions import OperatorError
from stripe_webhook_operator.kube import Kube

log = logging.getLogger(__name__)


async def nudge(kube: Kube, namespace: str, service: str, secrets_version: str) -> int:
    """When the aggregated Secret reached `secrets_version`, annotate each Pod behind the
    receiver Service `namespace/service` with it; return how many Pods were annotated."""
    try:
        pods = await kube.service_pods(namespace, service)
        annotation = {c.ANNOTATION_SECRETS_VERSION: secrets_version}
        await asyncio.gather(*(kube.annotate_pod(namespace, pod, annotation) for pod in pods))
    except (OperatorError, httpx.HTTPError) as exc:
        log.warning("Receiver Pods not nudged (their kubelet syncs them later): %s", exc)
        return 0
    return len(pods)
