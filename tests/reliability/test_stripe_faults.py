"""Stripe misbehaving, as the emulator injects it: 429 bursts with and without
`Stripe-Should-Retry`, 500 and 503, answers slower than the operator's timeout (before and
after the request ran), dropped connections, and an Idempotency-Key already used by someone
else. The operator still converges to one verifying endpoint per webhook, and with the
emulator enforcing Stripe's test-mode rate limit (25 requests/s per account) it is never
throttled. And a create that outlasts the operator's timeout: its retry finds the key in use
(409 `idempotency_key_in_use`), and the operator keeps the key until the first answer replays."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devstack.project.objects import api_key_secret, get_json, webhook_manifest
from devstack.project.scene import Scene
from devstack.stripe_emulator.fixtures import StripeTarget, own_emulator
from stripe_webhook_operator import manifests
from tests.reliability.convergence import check_deliveries, settle
from tests.reliability.ledger import TIMEOUT, Ledger, trials
from tests.reliability.sink import Sink

pytestmark = [pytest.mark.integration, pytest.mark.timeout(TIMEOUT)]

SCENARIO = "Stripe faults (429, 5xx, slow, dropped, idempotency) at 25 req/s"
STRIPE_TEST_MODE_RATE = 25
WEBHOOKS_PER_TRIAL = 5
ENDPOINTS = "/v1/webhook_endpoints"

# (fault spec, how many requests it spoils): the operator's timeout is 2 s, so `latency` and
# `answer_latency` of 3 s are timeouts before and after Stripe acted.
FAULTS: list[dict[str, Any]] = [
    {"status": 429, "count": 4},
    {"status": 429, "should_retry": True, "count": 2},
    {"status": 500, "count": 2},
    {"status": 503, "should_retry": True, "count": 2},
    {"latency": 3.0, "count": 2},
    {"answer_latency": 3.0, "method": "POST", "count": 2},
    {"drop": "before", "count": 2},
    {"drop": "after", "method": "POST", "count": 2},
]


@pytest.fixture(scope="module")
def stripe_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StripeTarget]:
    """An emulator of its own that throttles each account as Stripe test mode does."""
    workdir = Path(tmp_path_factory.mktemp("rate-limited-emulator"))
    with own_emulator(workdir, rate_limit=STRIPE_TEST_MODE_RATE) as target:
        yield target


def squat_idempotency_key(scene: Scene, name: str, url: str) -> None:
    """Use the key of `name`'s first create for another request, as a stranger's could."""
    uid = get_json(scene.kubectl, "stripewebhook", name, "-n", scene.namespace)["metadata"]["uid"]
    scene.client().v1.webhook_endpoints.create(
        {"url": url + "/squatter", "enabled_events": ["customer.subscription.updated"]},
        {"idempotency_key": manifests.idempotency_key(uid, 1)},
    )


def test_operator_converges_through_stripe_faults_within_the_rate_limit(
    scene: Scene, sink: Sink, ledger: Ledger
) -> None:
    row = ledger.row(SCENARIO)
    subscription = scene.stripe.create_subscription(scene.api_key)
    problems: list[str] = []
    operator = None
    count = trials(1, 5)
    key_ref = {"name": "stripe-api-key", "key": "api-key"}
    for trial in range(count):
        if trial:  # a fresh account per trial: Stripe caps one at 16 endpoints
            key_ref = {"name": f"stripe-api-key-t{trial}", "key": "api-key"}
            scene = dataclasses.replace(scene, api_key=scene.stripe.new_api_key())
            scene.apply(api_key_secret(scene.namespace, scene.api_key, name=key_ref["name"]))
            subscription = scene.stripe.create_subscription(scene.api_key)
        wanted = {
            f"t{trial}-w{i}": f"{sink.url}/{scene.namespace}/t{trial}-w{i}"
            for i in range(WEBHOOKS_PER_TRIAL)
        }
        for name, url in wanted.items():
            scene.apply(webhook_manifest(scene.namespace, name, url=url, apiKeySecretRef=key_ref))
        squat_idempotency_key(scene, f"t{trial}-w0", wanted[f"t{trial}-w0"])
        scene.stripe.reset_stats(scene.api_key)
        injected = 0
        for spec in FAULTS:
            scene.stripe.inject_fault(scene.api_key, path_prefix=ENDPOINTS, **spec)
            injected += int(spec["count"])
        # A fresh operator per trial: it must not see the webhooks before the key is squatted.
        operator = scene.start_operator("--stripe-timeout=2s")
        outcome = settle(scene, wanted, set())
        stats = scene.stripe.stats(scene.api_key)
        lost = outcome.lost or check_deliveries(scene, sink, wanted, subscription.id)
        row.add(
            trials=1,
            events_sent=len(wanted),
            lost=len(lost),
            applied_twice=len(outcome.extra),
            crashes=stats["faults_served"],
        )
        problems += [f"trial {trial}: {p}" for p in lost + outcome.extra]
        if stats["faults_served"] != injected:
            problems.append(f"trial {trial}: {stats['faults_served']} of {injected} faults served")
        squatted = scene.webhook(f"t{trial}-w0")["status"].get("secretVersion")
        if squatted != 2:  # the squatted key forces the next version
            problems.append(f"trial {trial}: squatted webhook at secret version {squatted}")
        if stats["rate_limited"]:
            problems.append(f"trial {trial}: {stats['rate_limited']} calls over the rate limit")
        scene.stripe.clear_faults(scene.api_key)
        if trial + 1 < count:
            # The next trial counts the receiver entries of the namespace: this trial's go first
            # (deleted while its operator runs, so their finalizers are released).
            scene.kubectl("delete", "swh", *wanted, "-n", scene.namespace, "--timeout=120s")
            operator.stop()
    assert not problems, json.dumps(problems, indent=1)
    assert operator is not None
    assert scene.api_key not in operator.log()
    assert scene.api_key not in operator.metrics()


def test_a_create_whose_key_is_still_in_use_ends_in_one_endpoint(
    scene: Scene, sink: Sink, ledger: Ledger
) -> None:
    row = ledger.row("Stripe create outlasting the timeout, retried into 409 key in use")
    subscription = scene.stripe.create_subscription(scene.api_key)
    operator = scene.start_operator("--stripe-timeout=2s")
    problems: list[str] = []
    wanted: dict[str, str] = {}
    for trial in range(trials(1, 3)):
        # The next create takes 5 s at Stripe: the operator gives up on it after 2 s and
        # retries with the same key while the first still runs.
        scene.stripe.inject_fault(
            scene.api_key, path_prefix=ENDPOINTS, method="POST", work_latency=5.0
        )
        refused = scene.stripe.stats(scene.api_key)["idempotency_key_in_use"]
        name = f"t{trial}-slow"
        wanted[name] = f"{sink.url}/{scene.namespace}/{name}"
        scene.apply(webhook_manifest(scene.namespace, name, url=wanted[name]))
        outcome = settle(scene, wanted, set())
        lost = outcome.lost or check_deliveries(scene, sink, wanted, subscription.id)
        refused = scene.stripe.stats(scene.api_key)["idempotency_key_in_use"] - refused
        row.add(
            trials=1,
            events_sent=1,
            lost=len(lost),
            applied_twice=len(outcome.extra),
            crashes=refused,
        )
        problems += [f"trial {trial}: {p}" for p in lost + outcome.extra]
        if not refused:
            problems.append(f"trial {trial}: no request was answered 409 idempotency_key_in_use")
        # Taken for a key mismatch, the 409 would have started secret version 2 (a second
        # endpoint, the first one orphaned until swept).
        version = scene.webhook(name)["status"].get("secretVersion")
        if version != 1:
            problems.append(f"trial {trial}: {name} at secret version {version}, not 1")
    endpoints = scene.endpoints()
    if len(endpoints) != len(wanted):
        problems.append(f"{len(endpoints)} endpoints at Stripe for {len(wanted)} webhooks")
    assert not problems, json.dumps(problems, indent=1)
    assert scene.api_key not in operator.log()
