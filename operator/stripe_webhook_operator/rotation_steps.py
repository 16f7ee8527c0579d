"""What the rotation state machine (rotation.py) reads and returns: what a pass observed, and
the steps, each one thing for reconcile.py to carry out. Plain frozen data, no behaviour."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import triggers as t
from stripe_webhook_operator.manifests import SigningKeys, StripeEndpoint, WebhookSpec
from stripe_webhook_operator.secret_value import SecretValue

if TYPE_CHECKING:
    from stripe_webhook_operator.receiver_probe import ProbeResult


class Unseen(enum.Enum):
    """Not looked at yet in this pass (as opposed to: looked, and found nothing)."""

    UNSEEN = "unseen"


UNSEEN: Final = Unseen.UNSEEN


@dataclass(frozen=True)
class Created:
    """Stripe's answer to the create: the endpoint and its signing secret (never looked at
    here, only carried to the step that writes it)."""

    endpoint: StripeEndpoint
    signing: SecretValue


@dataclass(frozen=True)
class Observed:
    """What the pass knows besides the recorded state: the spec, the user's annotations, the
    time, the operator's configuration, and what it looked at or was answered so far."""

    spec: WebhookSpec
    annotations: Mapping[str, str]
    now: datetime
    handshake: bool  # a receiver is configured to confirm new secrets
    cluster_id: str
    keys: SigningKeys | Unseen | None = UNSEEN  # the webhook's Secret; None: no complete one
    endpoint: StripeEndpoint | Unseen | None = UNSEEN  # the recorded endpoint; None: gone
    own: tuple[StripeEndpoint, ...] | Unseen = UNSEEN  # the account's endpoints of this uid
    created: Created | None = None  # Creating: the create call's answer
    seen_versions: tuple[int, ...] | None = None  # Creating: key refused, versions of own ones
    probe: ProbeResult | None = None  # Propagating: what the receiver said
    enabled: StripeEndpoint | None = None  # Enabling: the enable call's answer


@dataclass(frozen=True)
class Event:
    """A Kubernetes Event to post about the StripeWebhook."""

    reason: str
    message: str
    warning: bool = False


@dataclass(frozen=True)
class Patch:
    """Status changes (None removes a field) and the conditions they come with."""

    status: Mapping[str, Any] = field(default_factory=dict)
    conditions: tuple[cond.Condition, ...] = ()


@dataclass(frozen=True)
class ReadSecret:
    """Look at the webhook's Secret."""


@dataclass(frozen=True)
class LookUpEndpoint:
    """Look up the recorded endpoint in Stripe."""

    endpoint_id: str


@dataclass(frozen=True)
class ListOwnEndpoints:
    """List the account's endpoints tagged with this StripeWebhook's uid."""


@dataclass(frozen=True)
class CreateEndpoint:
    """Create (or replay) the endpoint of `version` with its Idempotency-Key and parameters."""

    version: int
    idempotency_key: str
    params: Mapping[str, Any]


@dataclass(frozen=True)
class DisableEndpoint:
    """Disable the endpoint just created (Stripe creates every endpoint enabled)."""

    endpoint_id: str


@dataclass(frozen=True)
class Probe:
    """Ask the receiver whether it holds the Secret's signing secret."""


@dataclass(frozen=True)
class EnableEndpoint:
    """Enable the new endpoint (or leave it disabled, as the spec asks) and record its id."""

    endpoint_id: str
    disabled: bool


@dataclass(frozen=True)
class Record:
    """Write the next state; `durable` now, else with the pass's next status write (only
    where replaying the step is harmless should the pass end before that)."""

    patch: Patch
    events: tuple[Event, ...] = ()
    durable: bool = True


@dataclass(frozen=True)
class Adopt:
    """Make an endpoint found in Stripe, whose secret the Secret holds, the current one."""

    endpoint_id: str
    patch: Patch


@dataclass(frozen=True)
class Begin:
    """Record the start of a new secret version before anything is created; with `forget`,
    first drop the recorded endpoint, which Stripe no longer has."""

    trigger: t.Trigger
    version: int
    patch: Patch
    events: tuple[Event, ...] = ()
    forget: Record | None = None


@dataclass(frozen=True)
class WriteSecrets:
    """Write the new secret (keeping `keep` as the previous one) into both Secrets, then the
    next state."""

    endpoint_id: str
    keep: str | None
    then: Record


@dataclass(frozen=True)
class FinishOverlap:
    """Delete the old endpoint (`delete`), drop the previous secret, complete the rotation."""

    delete: str | None
    drop_previous: bool
    livemode: bool
    then: Record


@dataclass(frozen=True)
class WaitForReceiver:
    """Record that the receiver does not hold the new secret yet, and ask again later."""

    patch: Patch


@dataclass(frozen=True)
class Settle:
    """No rotation step is due: correct drift, keep the receiver's entry, report Ready, and
    wait (in an overlap, at most until the old endpoint is due to go)."""

    endpoint: StripeEndpoint
    in_overlap: bool
    previous_expires: datetime | None
    deadline: datetime | None


Step = (
    ReadSecret
    | LookUpEndpoint
    | ListOwnEndpoints
    | CreateEndpoint
    | DisableEndpoint
    | Probe
    | EnableEndpoint
    | Record
    | Adopt
    | Begin
    | WriteSecrets
    | FinishOverlap
    | WaitForReceiver
    | Settle
)
