"""Names shared by the CRD, the operator, the kubectl plugin and the chart: one place each."""

from __future__ import annotations

from typing import Final

GROUP: Final = "stripe.operator.dev"
VERSION: Final = "v1alpha1"
API_VERSION: Final = f"{GROUP}/{VERSION}"
KIND: Final = "StripeWebhook"
PLURAL: Final = "stripewebhooks"
SINGULAR: Final = "stripewebhook"
SHORT_NAME: Final = "swh"
CATEGORY: Final = "stripe"

# Annotations and labels on StripeWebhook resources and the objects the operator writes.
PREFIX: Final = f"{GROUP}/"
ANNOTATION_ROTATE: Final = f"{PREFIX}rotate"
ANNOTATION_ROTATE_OVERLAP: Final = f"{PREFIX}rotate-overlap"
# An admin's recover request (`kubectl stripe recover`): a new id per request, and the start
# of the interval whose events are redelivered (RFC 3339 UTC).
ANNOTATION_RECOVER: Final = f"{PREFIX}recover"
ANNOTATION_RECOVER_SINCE: Final = f"{PREFIX}recover-since"
ANNOTATION_ENDPOINT_ID: Final = f"{PREFIX}endpoint-id"
ANNOTATION_PENDING_IDEMPOTENCY_KEY: Final = f"{PREFIX}pending-idempotency-key"
# On receiver Pods: the aggregated Secret's resourceVersion the operator last wrote. Changing a
# Pod makes its kubelet sync the Pod at once, Secret volumes included (receiver_pods.py).
ANNOTATION_SECRETS_VERSION: Final = f"{PREFIX}secrets-version"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
LABEL_MANAGED_BY_VALUE: Final = "stripe-webhook-operator"
LABEL_WEBHOOK_NAME: Final = f"{PREFIX}webhook"

# Keys of the per-webhook Secret (DESIGN.md, "Secret layout").
SECRET_KEY_SIGNING: Final = "signing-secret"
SECRET_KEY_PREVIOUS_SIGNING: Final = "previous-signing-secret"
SECRET_KEY_ENDPOINT_ID: Final = "endpoint-id"
SECRET_KEY_RECEIPTS_API_KEY: Final = "receipts-api-key"
SECRET_NAME_SUFFIX: Final = "-stripe-webhook"

# Metadata keys the operator sets on every Stripe endpoint it creates.
STRIPE_METADATA_UID: Final = "k8s-uid"
STRIPE_METADATA_NAMESPACE: Final = "k8s-namespace"
STRIPE_METADATA_NAME: Final = "k8s-name"
STRIPE_METADATA_CLUSTER: Final = "k8s-cluster"

# The only event type the receiver accepts.
SUBSCRIPTION_UPDATED: Final = "customer.subscription.updated"

# Condition types.
CONDITION_READY: Final = "Ready"
CONDITION_SYNCED: Final = "Synced"
CONDITION_SECRET_PROPAGATED: Final = "SecretPropagated"
CONDITION_ROTATING: Final = "Rotating"
CONDITION_RECOVERED: Final = "Recovered"

# The Stripe API version a StripeWebhook gets when `spec.stripeApiVersion` is left out: the CRD
# writes it into the object as a default (crds/stripewebhooks.yaml), so upgrading the library
# never silently replaces existing endpoints. Equal to the version stripe-python is pinned to.
DEFAULT_STRIPE_API_VERSION: Final = "2026-10-28.endive"

# Reasons of the `Rotating` condition (the rotation's current step) that the kubectl plugin
# relies on: no rotation runs, or the new endpoint is live beside the old one. The operator may
# use any other reason for the steps before the new endpoint is enabled.
ROTATION_STEP_IDLE: Final = "Idle"
ROTATION_STEP_OVERLAP: Final = "Overlap"
# The `stripe.operator.dev/rotate` value the current or last rotation serves (status field).
STATUS_ROTATION_REQUEST: Final = "rotationRequest"
# Where the recovery gaps, the last handled recover request and the lost intervals live.
STATUS_RECOVERY: Final = "recovery"

# Added by the operator: the endpoint's secret version (so a replayed or leftover endpoint is
# recognised), the release valve for a resource whose API key is gone, and the receiver's key.
STRIPE_METADATA_SECRET_VERSION: Final = "k8s-secret-version"
ANNOTATION_FORCE_DELETE: Final = f"{PREFIX}force-delete"
FINALIZER: Final = f"{PREFIX}finalizer"
# kopf's own bookkeeping annotations. Not GROUP itself: kopf hides every annotation under its
# storage prefix from change detection, which would hide `stripe.operator.dev/rotate` too.
KOPF_STORAGE_PREFIX: Final = f"kopf.{GROUP}"
DEFAULT_ENABLED_EVENTS: Final = (SUBSCRIPTION_UPDATED,)
