"""Reconciling one StripeWebhook: plain async functions with explicit arguments.

`reconcile()` reads the resource afresh, walks the rotation state machine (rotation.py) as far
as it can, corrects drift, writes status through the status subresource and returns how long to
wait before the next pass. `finalize()` runs on deletion. Nothing secret is returned, logged,
put in status or in an Event: secrets go only into Secrets (kube.py) and to Stripe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from stripe_webhook_operator import conditions as cond
from stripe_webhook_operator import constants as c
from stripe_webhook_operator import manifests, metrics, rotation
from stripe_webhook_operator.accounts import AccountCache
from stripe_webhook_operator.exceptions import (
    ApiKeyMissing,
    EndpointLimitReached,
    OperatorError,
    SecretConflict,
    StripeAuthenticationFailed,
    StripeIdempotencyMismatch,
    StripeNotFound,
    StripeRejected,
    StripeUnavailable,
)
from stripe_webhook_operator.kube import (
    UNREAD,
    Kube,
    KubernetesError,
    Unread,
    api_key_in,
    post_event,
)
from stripe_webhook_operator.manifests import SigningKeys, StripeEndpoint, WebhookSpec
from stripe_webhook_operator.receiver_entries import ReceiverEntries
from stripe_webhook_operator.receiver_probe import probe
from stripe_webhook_operator.secret_value import SecretValue
from stripe_webhook_operator.settings import Settings
from stripe_webhook_operator.stripe_api import StripeGateway

logger = logging.getLogger(__name__)

UNAVAILABLE_RETRY = 15.0
MAX_STEPS = 12
# The old endpoint is deleted this long (at most a quarter of the overlap) before its secret
# stops verifying: deleted only at the end, it would go on signing deliveries with a secret
# the receiver already refuses.
OLD_ENDPOINT_LEAD = 5.0


@dataclass
class Wakeup:
    """Why a webhook's loop should run again at once: a change of the resource, or of a
    Secret (by namespace/name, to a resourceVersion)."""

    event: asyncio.Event = field(default_factory=asyncio.Event)
    changed: bool = False
    secrets: dict[tuple[str, str], str] = field(default_factory=dict)

    def set(self, secret: tuple[str, str] | None = None, version: str = "") -> None:
        if secret is None:
            self.changed = True
        else:
            self.secrets[secret] = version
        self.event.set()

    def clear(self) -> None:
        self.changed = False
        self.secrets.clear()
        self.event.clear()

    def drop_seen(self, seen: Mapping[tuple[str, str], str]) -> None:
        """Forget Secret changes whose version a pass read or wrote since they came."""
        for secret, version in list(self.secrets.items()):
            if seen.get(secret) == version:
                del self.secrets[secret]
        if self.event.is_set() and not self.changed and not self.secrets:
            self.event.clear()


@dataclass
class Runtime:
    """What every reconcile needs; built once at start (cli.py) and passed explicitly."""

    settings: Settings
    kube: Kube
    stripe: StripeGateway
    http: httpx.AsyncClient
    cluster_id: str
    accounts: AccountCache | None = None
    receiver: ReceiverEntries | None = None
    wakeups: dict[tuple[str, str], Wakeup] = field(default_factory=dict)
    locks: dict[tuple[str, str], asyncio.Lock] = field(default_factory=dict)
    # The resourceVersion of each Secret (namespace, name) a webhook's passes last read or
    # wrote, by webhook: the watch event of a version a pass already saw (its own write, above
    # all) needs no further pass.
    secrets_seen: dict[tuple[str, str], dict[tuple[str, str], str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.receiver is None:
            self.receiver = ReceiverEntries(
                self.kube,
                self.settings.receiver_namespace,
                self.settings.receiver_secret_name,
                ttl=self.settings.drift_interval * 0.8,
            )

    def lock(self, namespace: str, name: str) -> asyncio.Lock:
        """Return the lock that keeps one webhook's passes from overlapping."""
        return self.locks.setdefault((namespace, name), asyncio.Lock())

    def wakeup(self, namespace: str, name: str) -> Wakeup:
        """Return what wakes a webhook's loop for an immediate, fresh pass."""
        return self.wakeups.setdefault((namespace, name), Wakeup())

    def wake(
        self, namespace: str, name: str, secret: tuple[str, str] | None = None, version: str = ""
    ) -> None:
        """Ask for an immediate pass over one webhook; with `secret`, because that Secret
        changed to `version` (no pass is needed if the running one reads that version)."""
        self.wakeup(namespace, name).set(secret, version)

    def drift_delay(self, api_key: SecretValue | None = None) -> float:
        """Return the pause before the next drift check, jittered.

        Counted from the account's last endpoint list when there is one, so that the webhooks
        of an account come due together and one list serves them all; counted from each
        webhook's own pass, they would drift apart and the list would expire between them."""
        jitter = self.settings.drift_jitter
        delay = self.settings.drift_interval + random.uniform(0, jitter)
        if self.accounts is None or api_key is None:
            return delay
        age = self.accounts.age(api_key)
        return delay if age is None else max(delay - age, 0.0)

    def saw_secret(self, webhook: tuple[str, str], secret: Mapping[str, Any] | None) -> None:
        """Remember the version of a Secret that a pass of `webhook` read or wrote."""
        metadata = (secret or {}).get("metadata") or {}
        if metadata.get("resourceVersion"):
            seen = self.secrets_seen.setdefault(webhook, {})
            seen[(str(metadata.get("namespace")), str(metadata.get("name")))] = str(
                metadata["resourceVersion"]
            )

    def has_seen(self, webhook: tuple[str, str], secret: tuple[str, str], version: str) -> bool:
        """Return whether a pass of `webhook` already read or wrote this Secret version."""
        return self.secrets_seen.get(webhook, {}).get(secret) == version


def now_utc() -> datetime:
    """Return the current time, timezone-aware (one place, so tests read it the same way)."""
    return datetime.now(UTC)


class Pass:
    """One reconcile pass over one StripeWebhook: its fresh body and the status it builds."""

    def __init__(self, rt: Runtime, body: Mapping[str, Any], fresh: bool) -> None:
        self.rt = rt
        self.body = body
        self.fresh = fresh
        self.spec: WebhookSpec = manifests.parse_webhook(body, rt.settings.public_base_url)
        self.status: dict[str, Any] = dict(body.get("status") or {})
        self.annotations: dict[str, str] = dict(body["metadata"].get("annotations") or {})
        self.generation = int(body["metadata"].get("generation") or 0)
        self.api_key = SecretValue("")
        # The webhook's Secret as read or written in this pass (UNREAD until then): one read
        # per pass, whatever the number of steps.
        self.secret: Mapping[str, Any] | Unread | None = UNREAD
        # An endpoint as Stripe answered it in this pass: no need to ask again.
        self.known_endpoint: StripeEndpoint | None = None
        # Status changes made durable by the next save (whichever comes first).
        self.staged: dict[str, Any] = {}

    @property
    def key(self) -> tuple[str, str]:
        return (self.spec.namespace, self.spec.name)

    # status and events ----------------------------------------------------------------

    def _with_conditions(
        self, patch: Mapping[str, Any], wanted: list[cond.Condition]
    ) -> dict[str, Any]:
        full = dict(patch)
        if wanted:
            full["conditions"] = cond.merge(
                self.status.get("conditions"), wanted, self.generation, now_utc()
            )
        return full

    def stage(self, patch: Mapping[str, Any], wanted: list[cond.Condition] = ()) -> None:  # type: ignore[assignment]
        """Apply `patch` (and the conditions in `wanted`) to status in memory; the next save
        writes it with its own changes.

        Only for a step whose replay is harmless: if the pass ends before that save, the
        next pass does the step again."""
        for key, value in self._with_conditions(patch, wanted).items():
            self.staged[key] = value
            if value is None:
                self.status.pop(key, None)
            else:
                self.status[key] = value

    async def save(self, patch: Mapping[str, Any], wanted: list[cond.Condition] = ()) -> None:  # type: ignore[assignment]
        """Patch status with `patch` and the conditions in `wanted`, and remember the result;
        nothing is written when status already says all of it."""
        full = {**self.staged, **self._with_conditions(patch, wanted)}
        changes = {
            key: value
            for key, value in full.items()
            if key in self.staged or self.status.get(key) != value
        }
        if not changes:
            return
        for key, value in changes.items():
            if value is None:
                self.status.pop(key, None)
            else:
                self.status[key] = value
        await self.rt.kube.patch_webhook_status(self.spec.namespace, self.spec.name, changes)
        self.staged = {}

    def event(self, reason: str, message: str, *, warning: bool = False) -> None:
        """Post an Event about this StripeWebhook."""
        post_event(self.body, warning=warning, reason=reason, message=message)

    async def fail(self, reason: str, message: str) -> None:
        """Report a failure in Ready/Synced, with one Warning Event per distinct failure."""
        metrics.ERRORS.labels(reason=reason).inc()
        previous = cond.find(self.status.get("conditions"), c.CONDITION_READY) or {}
        if previous.get("reason") != reason or previous.get("message") != message:
            self.event(reason, message, warning=True)
            logger.warning("%s: %s", self.spec.webhook, message)
        await self.save({"observedGeneration": self.generation}, cond.failed(reason, message))

    async def annotate(self, values: Mapping[str, str | None]) -> None:
        """Set annotations on the StripeWebhook (endpoint id, pending idempotency key)."""
        changes = {k: v for k, v in values.items() if self.annotations.get(k) != v}
        if not changes:
            return
        await self.rt.kube.patch_webhook_annotations(self.spec.namespace, self.spec.name, changes)
        for key, value in changes.items():
            if value is None:
                self.annotations.pop(key, None)
            else:
                self.annotations[key] = value

    @property
    def rotation_state(self) -> dict[str, Any]:
        return dict(self.status.get("rotation") or {})

    async def save_rotation(self, changes: Mapping[str, Any], **status: Any) -> None:
        """Merge `changes` into status.rotation (and other status fields) and save."""
        state = self.rotation_state
        state.update(changes)
        await self.save({"rotation": state, **status})

    # secrets --------------------------------------------------------------------------

    async def read_keys(self) -> tuple[SigningKeys | None, SecretValue | None]:
        """Return the webhook Secret's keys (None if incomplete) and its receipts key."""
        if isinstance(self.secret, Unread):
            self.secret = await self.rt.kube.get_secret(self.spec.namespace, self.spec.secret_name)
            self.rt.saw_secret(self.key, self.secret)
        secret = self.secret
        if secret is None:
            return None, None
        owners = secret.get("metadata", {}).get("ownerReferences") or []
        if not any(ref.get("uid") == self.spec.uid for ref in owners):
            raise SecretConflict(
                f"Secret '{self.spec.secret_name}' already exists and is not owned by this "
                "StripeWebhook; delete or rename it, or set `spec.secretName` to another name."
            )
        data = secret.get("data")
        return (
            manifests.read_signing_keys(data),
            manifests.decode(data, c.SECRET_KEY_RECEIPTS_API_KEY),
        )

    async def write_keys(
        self, keys: SigningKeys, livemode: bool, not_after: datetime | None
    ) -> None:
        """Write the per-webhook Secret and the webhook's entry in the receiver's Secret."""
        written = await self.rt.kube.write_owned_secret(
            self.spec.namespace,
            self.spec.secret_name,
            manifests.owner_reference(self.body),
            manifests.labels(self.spec),
            manifests.webhook_secret_data(keys),
            existing=self.secret,
        )
        self.secret = written if written is not None else UNREAD
        self.rt.saw_secret(self.key, written)
        await self.write_receiver_entry(keys, livemode, not_after)

    async def write_receiver_entry(
        self, keys: SigningKeys, livemode: bool, not_after: datetime | None
    ) -> None:
        """Put the webhook's entry into the receiver's aggregated Secret if it differs."""
        assert self.rt.receiver is not None
        key = manifests.receiver_entry_key(self.spec.namespace, self.spec.name)
        entry = manifests.encode(manifests.receiver_entry(self.spec, keys, livemode, not_after))
        await self.rt.receiver.put(key, entry)

    # Stripe ---------------------------------------------------------------------------

    async def own_endpoints(self) -> list[StripeEndpoint]:
        """Return every endpoint of the account tagged with this StripeWebhook's uid, as
        listed after this call began (one list serves the account's webhooks that ask
        together)."""
        cache = self.rt.accounts
        if cache is None:
            endpoints = await self.rt.stripe.list_endpoints(self.api_key)
        else:
            endpoints = await cache.current_endpoints(self.api_key)
        return [e for e in endpoints if e.uid == self.spec.uid]

    async def current_endpoint(self, endpoint_id: str) -> StripeEndpoint | None:
        """Return the endpoint, from the account cache on a drift pass; a cached answer that
        disagrees with the spec is checked afresh before anything acts on it."""
        known = self.known_endpoint
        if known is not None and known.id == endpoint_id:
            return known
        cache = self.rt.accounts
        if not self.fresh and cache is not None:
            cached = {e.id: e for e in await cache.endpoints(self.api_key)}.get(endpoint_id)
            if cached is not None and not self.update_params(cached):
                return cached
        try:
            return await self.rt.stripe.retrieve_endpoint(self.api_key, endpoint_id)
        except StripeNotFound:
            return None

    def update_params(self, endpoint: StripeEndpoint) -> dict[str, Any]:
        version = int(self.status.get("secretVersion") or 1)
        return manifests.update_params(self.spec, endpoint, self.rt.cluster_id, version)


async def reconcile(rt: Runtime, namespace: str, name: str, fresh: bool) -> float:
    """When a StripeWebhook changes or its timer fires, bring Stripe and the Secrets in line
    with it; return the seconds until the next pass."""
    body = await rt.kube.get_webhook(namespace, name)
    if body is None or body["metadata"].get("deletionTimestamp"):
        return rt.drift_delay()
    work = Pass(rt, body, fresh)
    try:
        delay = await _run(work)
    except ApiKeyMissing as exc:
        await work.fail(exc.reason, str(exc))
        delay = rt.drift_delay()
    except StripeAuthenticationFailed as exc:
        await work.fail(exc.reason, _api_key_message(work.spec, exc.message))
        delay = rt.drift_delay()
    except EndpointLimitReached as exc:
        await work.fail(
            exc.reason,
            f"Stripe refused a new endpoint: {exc.message}; delete an unused webhook endpoint "
            "of this Stripe account (16 in test mode) and the operator retries.",
        )
        delay = rt.drift_delay()
    except StripeRejected as exc:
        await work.fail(exc.reason, f"Stripe refused the request ({exc.status}): {exc.message}")
        delay = rt.drift_delay()
    except StripeUnavailable as exc:
        await work.fail(exc.reason, f"{exc.message}; the operator retries with backoff.")
        delay = UNAVAILABLE_RETRY
    except SecretConflict as exc:
        await work.fail(exc.reason, str(exc))
        delay = rt.drift_delay()
    except KubernetesError as exc:
        metrics.ERRORS.labels(reason=exc.reason).inc()
        logger.warning("%s: %s", work.spec.webhook, exc)
        delay = UNAVAILABLE_RETRY
    metrics.record_pass(work.spec.webhook, _is_ready(work), _rotation_step(work), _now())
    return delay


def _now() -> float:
    return now_utc().timestamp()


def _rotation_step(work: Pass) -> str | None:
    phase = rotation.phase_of(work.status)
    return None if phase == rotation.IDLE else phase


def _api_key_message(spec: WebhookSpec, detail: str) -> str:
    return (
        f"{detail}; put a valid API key into Secret '{spec.api_key_secret}' under key "
        f"`{spec.api_key_key}`."
    )


def _is_ready(work: Pass) -> bool:
    ready = cond.find(work.status.get("conditions"), c.CONDITION_READY) or {}
    return ready.get("status") == cond.TRUE


async def _run(work: Pass) -> float:
    spec = work.spec
    if not spec.url:
        await work.fail(
            cond.URL_MISSING,
            "`spec.url` is not set and the operator has no `--public-base-url`; set one of them.",
        )
        return work.rt.drift_delay()
    key_secret = await work.rt.kube.get_secret(spec.namespace, spec.api_key_secret)
    work.rt.saw_secret(work.key, key_secret)
    work.api_key = api_key_in(key_secret, spec.namespace, spec.api_key_secret, spec.api_key_key)
    for _step in range(MAX_STEPS):
        phase = rotation.phase_of(work.status)
        if phase == rotation.CREATING:
            await _create(work)
        elif phase == rotation.PROPAGATING:
            if not await _propagate(work):
                return work.rt.settings.propagation_interval
        elif phase == rotation.ENABLING:
            await _enable(work)
        else:
            wait = await _settle(work)
            if wait is not None:
                return wait
    return work.rt.settings.propagation_interval


async def _begin(work: Pass, trigger: rotation.Trigger, old: str | None, seen: list[int]) -> None:
    """Start a rotation (or the first version): record it before anything is created."""
    version = rotation.next_version(work.status, seen)
    state = rotation.start(work.status, trigger, old, version)
    state["params"] = manifests.create_params(work.spec, work.rt.cluster_id, version)
    creating: list[cond.Condition] = []
    if trigger.reason != rotation.CREATED:
        work.event(
            "RotationStarted",
            f"Rotating to secret version {version} because {trigger.describe()}; the old secret "
            f"stays valid for {int(trigger.overlap)} s after the new one is written.",
        )
    else:
        creating = [
            cond.Condition(
                c.CONDITION_READY, cond.FALSE, cond.CREATING, "Creating the Stripe endpoint."
            ),
            cond.Condition(
                c.CONDITION_SYNCED, cond.FALSE, cond.CREATING, "Creating the Stripe endpoint."
            ),
        ]
    logger.info("%s: rotation to version %d (%s)", work.spec.webhook, version, trigger.reason)
    await work.save({"rotation": state}, creating)


async def _create(work: Pass) -> None:
    """Creating: create (or replay) the endpoint, disable it, write both secrets."""
    state = work.rotation_state
    version = int(state["targetVersion"])
    spec = work.spec
    existing, receipts = await work.read_keys()  # also refuses a Secret that is not ours
    key = manifests.idempotency_key(spec.uid, version)
    await work.annotate({c.ANNOTATION_PENDING_IDEMPOTENCY_KEY: key})
    params = state.get("params") or manifests.create_params(spec, work.rt.cluster_id, version)
    try:
        endpoint, signing = await work.rt.stripe.create_endpoint(work.api_key, params, key)
    except StripeIdempotencyMismatch:
        # The key was used with other parameters (status lost while the spec changed): that
        # endpoint's secret cannot be had again, so make the next version and drop the rest.
        own = await work.own_endpoints()
        await work.save_rotation(
            {
                "targetVersion": rotation.next_version(
                    {"secretVersion": version}, [e.secret_version or 0 for e in own]
                ),
                "params": None,
            }
        )
        return
    if endpoint.status != "disabled":
        endpoint = await work.rt.stripe.update_endpoint(
            work.api_key, endpoint.id, {"disabled": True}
        )
    old_id = state.get("oldEndpointId")
    overlap = float(state.get("overlapSeconds") or 0)
    previous: SecretValue | None = None
    if existing is not None and overlap > 0 and old_id:
        if existing.endpoint_id == old_id:
            previous = existing.signing
        elif existing.endpoint_id == endpoint.id:
            previous = existing.previous  # a replay after the Secret was already written
    keys = SigningKeys(
        signing=signing,
        receipts_api_key=receipts or manifests.new_receipts_api_key(),
        endpoint_id=endpoint.id,
        previous=previous,
    )
    # The old secret gets no end yet: until the new endpoint is enabled the old endpoint is
    # the only one Stripe delivers to, however long propagation takes. The overlap starts at
    # the enable (_enable); counted from here, a slow receiver would refuse the old endpoint's
    # deliveries and their events would be lost with it.
    await work.write_keys(keys, endpoint.livemode, None)
    changes = {
        "phase": rotation.PROPAGATING,
        "newEndpointId": endpoint.id,
        "previousKept": previous is not None,
    }
    if work.rt.settings.handshake_configured:
        work.event(
            "NewEndpointCreated",
            f"Created Stripe endpoint {endpoint.id} (secret version {version}), disabled until "
            "the receiver holds its secret.",
        )
        await work.save_rotation(changes, secretName=spec.secret_name)
        return
    # Nothing to wait for: straight on to the enable.
    enabling = {
        "rotation": {**work.rotation_state, **changes, "phase": rotation.ENABLING},
        "secretName": spec.secret_name,
    }
    if old_id:
        work.event(
            "NewEndpointCreated",
            f"Created Stripe endpoint {endpoint.id} (secret version {version}); it is enabled "
            "next.",
        )
        await work.save(enabling, [cond.propagated(False)])
    else:
        # No old endpoint delivers meanwhile: should this pass end before its next status
        # write, the next one replays the create (same key, same endpoint and secret).
        # The enable's Event says it all.
        work.stage(enabling, [cond.propagated(False)])


async def _propagate(work: Pass) -> bool:
    """Propagating: wait until every receiver replica lists the new secret's fingerprint."""
    settings = work.rt.settings
    state = work.rotation_state
    keys, _ = await work.read_keys()
    if keys is None or keys.endpoint_id != state.get("newEndpointId"):
        # The Secret was lost mid-rotation: replaying the create rewrites it.
        await work.save_rotation({"phase": rotation.CREATING})
        return True
    if settings.receiver_url is None:
        await work.save(
            {"rotation": {**work.rotation_state, "phase": rotation.ENABLING}},
            [cond.propagated(False)],
        )
        return True
    result = await probe(
        work.rt.http,
        work.rt.kube,
        settings.receiver_url,
        settings.receiver_service,
        f"{work.spec.namespace}/{work.spec.name}",
        keys.signing.fingerprint(),
    )
    if not result.confirmed:
        await work.save({}, [cond.waiting_for_receiver(result.detail)])
        return False
    work.event(
        "SecretPropagated",
        f"The receiver holds secret version {state['targetVersion']} ({result.detail}).",
    )
    await work.save(
        {"rotation": {**work.rotation_state, "phase": rotation.ENABLING}},
        [cond.propagated(True, f" ({result.detail})")],
    )
    return True


async def _enable(work: Pass) -> None:
    """Enabling: enable the new endpoint and make it the current one."""
    state = work.rotation_state
    spec = work.spec
    new_id = str(state["newEndpointId"])
    endpoint = await work.rt.stripe.update_endpoint(
        work.api_key, new_id, {"disabled": spec.disabled}
    )
    old_id = state.get("oldEndpointId")
    params = state.get("params") or {}
    now = now_utc()
    stamp = manifests.rfc3339(now)
    overlap_end = now + timedelta(seconds=float(state.get("overlapSeconds") or 0))
    await work.annotate(
        {c.ANNOTATION_ENDPOINT_ID: new_id, c.ANNOTATION_PENDING_IDEMPOTENCY_KEY: None}
    )
    work.known_endpoint = endpoint
    patch = {
        "rotation": {
            **state,
            "phase": rotation.OVERLAP if old_id else rotation.IDLE,
            "newEndpointId": None,
            "params": None,
            "applied": {
                "apiVersion": params.get("api_version", spec.api_version),
                "connect": bool(params.get("connect", False)),
            },
        },
        "endpointId": new_id,
        "secretVersion": int(state["targetVersion"]),
        "lastRotationTime": stamp,
        "previousEndpointId": old_id,
        "previousSecretExpiresAt": (
            manifests.rfc3339(overlap_end)
            if state.get("previousKept")
            else (stamp if old_id else None)
        ),
        "url": endpoint.url,
        "stripeStatus": endpoint.status,
        "livemode": endpoint.livemode,
    }
    if old_id:
        # The overlap's clock starts at this enable: on record before anything else happens.
        await work.save(patch)
    else:
        # Written with the Ready condition by the rest of this pass; should the pass end
        # first, the next one enables again, which changes nothing in Stripe.
        work.stage(patch)
    metrics.record_endpoint_status(spec.uid, endpoint.status)
    if state.get("trigger") == rotation.CREATED:
        work.event("EndpointEnabled", f"Stripe endpoint {new_id} is live.")
    elif not old_id:
        work.event("RotationCompleted", f"Secret version {state['targetVersion']} is live.")


async def _finish_overlap(work: Pass) -> None:
    """Overlap over: delete the old endpoint, drop the old secret, complete the rotation."""
    old_id = work.status.get("previousEndpointId")
    if old_id and old_id != work.status.get("endpointId"):
        await work.rt.stripe.delete_endpoint(work.api_key, str(old_id))
        work.event("OldEndpointDeleted", f"Deleted the previous Stripe endpoint {old_id}.")
    keys, _ = await work.read_keys()
    if keys is not None and keys.previous is not None:
        keys = SigningKeys(keys.signing, keys.receipts_api_key, keys.endpoint_id, None)
        await work.write_keys(keys, bool(work.status.get("livemode")), None)
    await work.save_rotation(
        {"phase": rotation.IDLE}, previousEndpointId=None, previousSecretExpiresAt=None
    )
    work.event(
        "RotationCompleted",
        f"Secret version {work.status.get('secretVersion')} is the only one accepted now.",
    )


async def _adopt_or_create(work: Pass) -> None:
    """No endpoint on record: adopt one tagged with our uid whose secret we hold, or create."""
    keys, _ = await work.read_keys()
    own = await work.own_endpoints() if keys is not None or _left_traces(work) else []
    for endpoint in own:
        if keys is not None and keys.endpoint_id == endpoint.id:
            logger.info("%s: adopting endpoint %s", work.spec.webhook, endpoint.id)
            await work.annotate({c.ANNOTATION_ENDPOINT_ID: endpoint.id})
            await work.save(
                {
                    "endpointId": endpoint.id,
                    "secretVersion": endpoint.secret_version or 1,
                    "rotation": {
                        **work.rotation_state,
                        "phase": rotation.IDLE,
                        "request": work.annotations.get(c.ANNOTATION_ROTATE),
                        "applied": {
                            "apiVersion": endpoint.api_version or work.spec.api_version,
                            "connect": work.spec.connect,
                        },
                    },
                }
            )
            return
    # Endpoints tagged with our uid whose secret is lost are replaced: they go at enable time
    # (the first as "old", with no overlap) and in the duplicate sweep of later passes.
    old = own[0].id if own else None
    trigger = rotation.Trigger(rotation.CREATED if not own else rotation.SECRET_LOST, 0.0)
    state = work.rotation_state
    state["request"] = work.annotations.get(c.ANNOTATION_ROTATE)
    work.status["rotation"] = state
    await _begin(work, trigger, old, [e.secret_version or 0 for e in own])


async def _settle(work: Pass) -> float | None:
    """Idle or Overlap: correct drift, start a rotation when one is due; None = go on."""
    status = work.status
    spec = work.spec
    current_id = status.get("endpointId") or work.annotations.get(c.ANNOTATION_ENDPOINT_ID)
    if not current_id:
        await _adopt_or_create(work)
        return None
    endpoint = await work.current_endpoint(str(current_id))
    if endpoint is None:
        work.event(
            cond.ENDPOINT_DELETED,
            f"Stripe endpoint {current_id} no longer exists; creating a new one.",
            warning=True,
        )
        await work.save({"endpointId": None, "stripeStatus": None, "previousEndpointId": None})
        await work.annotate({c.ANNOTATION_ENDPOINT_ID: None})
        await _begin(work, rotation.Trigger(rotation.ENDPOINT_DELETED, 0.0), None, [])
        return None
    keys, _ = await work.read_keys()
    if keys is None or keys.endpoint_id != endpoint.id:
        await _begin(work, rotation.Trigger(rotation.SECRET_LOST, 0.0), endpoint.id, [])
        return None
    in_overlap = rotation.phase_of(status) == rotation.OVERLAP
    if in_overlap:
        deadline = _old_endpoint_deadline(status)
        if (
            deadline is None
            or now_utc() >= deadline
            or rotation.cuts_overlap_short(spec, status, work.annotations)
        ):
            await _finish_overlap(work)
            return None
    else:
        trigger = rotation.choose_trigger(spec, status, work.annotations, now_utc())
        if trigger is not None:
            await _begin(work, trigger, endpoint.id, [])
            return None
    endpoint = await _correct(work, endpoint)
    expires = rotation.parse_time(status.get("previousSecretExpiresAt")) if in_overlap else None
    await work.write_receiver_entry(keys, endpoint.livemode, expires)
    if (
        not in_overlap
        and work.rt.accounts is not None
        and not work.fresh
        and work.known_endpoint is None  # just enabled: its leftovers wait for the next pass
    ):
        await _drop_duplicates(work, endpoint.id)
    metrics.record_endpoint_status(spec.uid, endpoint.status)
    wanted = cond.ready()
    if not work.rt.settings.handshake_configured:
        wanted.append(cond.propagated(False))
    await work.save(
        {
            "endpointId": endpoint.id,
            "url": endpoint.url,
            "stripeStatus": endpoint.status,
            "livemode": endpoint.livemode,
            "secretName": spec.secret_name,
            "observedGeneration": work.generation,
        },
        wanted,
    )
    delay = work.rt.drift_delay(work.api_key)
    deadline = _old_endpoint_deadline(status) if in_overlap else None
    if deadline is not None:
        delay = min(delay, max((deadline - now_utc()).total_seconds(), 0.0) + 0.1)
    return delay


def _left_traces(work: Pass) -> bool:
    """Return whether an earlier pass may have created an endpoint for this resource.

    Every create is preceded by the pending Idempotency-Key annotation (and status.rotation),
    and that annotation leaves only in the patch that records the endpoint id: with none of
    these and no Secret, the account cannot hold an endpoint tagged with this uid, and a new
    StripeWebhook needs no list call. (Should someone strip them by hand, the duplicate check
    of the drift pass still deletes the leftover.)"""
    return bool(
        work.status.get("rotation")
        or work.status.get("endpointId")
        or work.annotations.get(c.ANNOTATION_PENDING_IDEMPOTENCY_KEY)
        or work.annotations.get(c.ANNOTATION_ENDPOINT_ID)
    )


def _old_endpoint_deadline(status: Mapping[str, Any]) -> datetime | None:
    """Return when the overlap's old endpoint goes: a little before its secret expires."""
    expires = rotation.parse_time(status.get("previousSecretExpiresAt"))
    if expires is None:
        return None
    overlap = float((status.get("rotation") or {}).get("overlapSeconds") or 0)
    return expires - timedelta(seconds=min(OLD_ENDPOINT_LEAD, overlap / 4))


async def _correct(work: Pass, endpoint: StripeEndpoint) -> StripeEndpoint:
    """Update in place what differs from the spec; re-enable an endpoint Stripe disabled."""
    params = work.update_params(endpoint)
    if not params:
        return endpoint
    if endpoint.status == "disabled" and not work.spec.disabled:
        await work.fail(
            cond.ENDPOINT_DISABLED,
            f"Stripe reports endpoint {endpoint.id} as disabled (usually after failed "
            "deliveries); the operator re-enables it — check the receiver's logs.",
        )
    updated = await work.rt.stripe.update_endpoint(work.api_key, endpoint.id, params)
    fields = ", ".join(f"`{key}`" for key in sorted(params))
    work.event("EndpointUpdated", f"Updated {fields} of Stripe endpoint {endpoint.id}.")
    return updated


async def _drop_duplicates(work: Pass, current_id: str) -> None:
    """Delete endpoints tagged with our uid that are neither current nor in a rotation."""
    assert work.rt.accounts is not None
    for endpoint in await work.rt.accounts.endpoints(work.api_key):
        if endpoint.uid == work.spec.uid and endpoint.id != current_id:
            logger.info("%s: deleting leftover endpoint %s", work.spec.webhook, endpoint.id)
            await work.rt.stripe.delete_endpoint(work.api_key, endpoint.id)
            work.event("OldEndpointDeleted", f"Deleted leftover Stripe endpoint {endpoint.id}.")


def _known_endpoint_ids(status: Mapping[str, Any], annotations: Mapping[str, str]) -> set[str]:
    state = status.get("rotation") or {}
    ids = {
        status.get("endpointId"),
        status.get("previousEndpointId"),
        state.get("newEndpointId"),
        state.get("oldEndpointId"),
        annotations.get(c.ANNOTATION_ENDPOINT_ID),
    }
    return {str(i) for i in ids if i}


def force_delete_requested(annotations: Mapping[str, str]) -> bool:
    """Return whether the user asked to release the resource without Stripe."""
    return annotations.get(c.ANNOTATION_FORCE_DELETE, "").lower() in {"true", "1", "yes"}


class DeletionBlocked(OperatorError):
    """Stripe cannot be reached with the resource's API key, and no force-delete is set."""

    reason = cond.DELETION_BLOCKED


async def finalize(rt: Runtime, body: Mapping[str, Any]) -> None:
    """When a StripeWebhook is deleted, apply its deletion policy and drop its receiver entry;
    raise DeletionBlocked while Stripe cannot be told and no force-delete is set."""
    work = Pass(rt, body, fresh=True)
    spec = work.spec
    force = force_delete_requested(work.annotations)
    try:
        work.api_key = await rt.kube.read_api_key(
            spec.namespace, spec.api_key_secret, spec.api_key_key
        )
        if spec.deletion_policy == "Orphan":
            await _orphan(work)
        else:
            await _delete_all(work)
    except (ApiKeyMissing, StripeAuthenticationFailed) as exc:
        message = exc.message if isinstance(exc, StripeAuthenticationFailed) else str(exc)
        if not force and spec.deletion_policy != "Orphan":
            text = (
                f"Cannot delete the Stripe endpoint: {message} Restore the API key, or set the "
                f'annotation `{c.ANNOTATION_FORCE_DELETE}: "true"` to release the resource '
                "and leave the endpoint in Stripe."
            )
            await work.fail(cond.DELETION_BLOCKED, text)
            raise DeletionBlocked(text) from exc
        work.event(
            "EndpointLeftInStripe",
            f"Released without Stripe ({message}); endpoint "
            f"{work.status.get('endpointId') or 'unknown'} stays in the Stripe account.",
            warning=True,
        )
        if spec.deletion_policy == "Orphan":
            await rt.kube.disown_secret(spec.namespace, spec.secret_name, spec.uid)
    assert rt.receiver is not None
    await rt.receiver.put(manifests.receiver_entry_key(spec.namespace, spec.name), None)
    metrics.record_endpoint_status(spec.uid, None)
    metrics.record_rotation_step(spec.webhook, None, _now())


async def _delete_all(work: Pass) -> None:
    """Delete policy: every endpoint of this resource goes (404 counts as done)."""
    ids = _known_endpoint_ids(work.status, work.annotations)
    ids.update(e.id for e in await work.own_endpoints())
    for endpoint_id in sorted(ids):
        if await work.rt.stripe.delete_endpoint(work.api_key, endpoint_id):
            work.event("EndpointDeleted", f"Deleted Stripe endpoint {endpoint_id}.")


async def _orphan(work: Pass) -> None:
    """Orphan policy: the current endpoint and its Secret stay; unfinished ones go."""
    current = work.status.get("endpointId") or work.annotations.get(c.ANNOTATION_ENDPOINT_ID)
    spec = work.spec
    for endpoint_id in sorted(_known_endpoint_ids(work.status, work.annotations)):
        if endpoint_id == current:
            continue
        await work.rt.stripe.delete_endpoint(work.api_key, endpoint_id)
    if current:
        # Untagged from this cluster, so the orphan sweep leaves it alone from now on.
        with contextlib.suppress(StripeNotFound):
            await work.rt.stripe.update_endpoint(
                work.api_key, str(current), {"metadata": {c.STRIPE_METADATA_CLUSTER: ""}}
            )
    await work.rt.kube.disown_secret(spec.namespace, spec.secret_name, spec.uid)
    work.event(
        "EndpointOrphaned", f"Stripe endpoint {current} and Secret '{spec.secret_name}' stay."
    )


async def sweep_orphans(rt: Runtime, api_key: SecretValue, endpoints: list[StripeEndpoint]) -> None:
    """After an account's endpoints were listed, delete those tagged with this cluster whose
    StripeWebhook no longer exists (with Stripe's endpoint cap, an orphan is an outage)."""
    settings = rt.settings
    tagged = [
        e
        for e in endpoints
        if e.metadata.get(c.STRIPE_METADATA_CLUSTER) == rt.cluster_id
        and e.uid
        and (
            settings.clusterwide
            or e.metadata.get(c.STRIPE_METADATA_NAMESPACE) in settings.namespaces
        )
    ]
    if not tagged:
        return
    live = {item["metadata"]["uid"] for item in await rt.kube.list_webhooks(settings.namespaces)}
    for endpoint in tagged:
        if endpoint.uid not in live:
            logger.info("deleting orphaned endpoint %s (its StripeWebhook is gone)", endpoint.id)
            await rt.stripe.delete_endpoint(api_key, endpoint.id)


async def run_loop(rt: Runtime, namespace: str, name: str, stopped: Any) -> None:
    """Reconcile one webhook until `stopped`: at once, then after each returned delay, or
    sooner when something wakes it (a fresh pass, rather than one from the account cache).

    The first pass reads the account cache too: after a restart, one list per account checks
    every webhook of it, where fresh passes would read each endpoint on its own."""
    metrics.WEBHOOKS.inc()
    try:
        await _loop(rt, namespace, name, stopped)
    finally:
        # Another replica may carry on with this webhook: a step left here would look stuck.
        metrics.WEBHOOKS.dec()
        metrics.record_rotation_step(f"{namespace}/{name}", None, _now())
        rt.secrets_seen.pop((namespace, name), None)


async def _loop(rt: Runtime, namespace: str, name: str, stopped: Any) -> None:
    wakeup = rt.wakeup(namespace, name)
    key = (namespace, name)
    fresh = False
    while not stopped:
        wakeup.clear()
        async with rt.lock(namespace, name):
            try:
                delay = await reconcile(rt, namespace, name, fresh)
            except (OperatorError, httpx.HTTPError) as exc:
                logger.warning(
                    "%s/%s: pass failed (%s): %s", namespace, name, type(exc).__name__, exc
                )
                delay = UNAVAILABLE_RETRY
        # The watch events of Secrets this pass read or wrote (its own writes, above all) may
        # come while it runs: they need no second pass.
        wakeup.drop_seen(rt.secrets_seen.get(key, {}))
        waiter = asyncio.ensure_future(wakeup.event.wait())
        stopper = asyncio.ensure_future(stopped.wait())
        done, pending = await asyncio.wait(
            {waiter, stopper}, timeout=delay, return_when=asyncio.FIRST_COMPLETED
        )
        for task in pending:
            task.cancel()
        fresh = waiter in done
