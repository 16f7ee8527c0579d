"""Our verifier against Stripe's own signer: stripe-node's `generateTestHeaderString`."""

from __future__ import annotations

import json
import shutil
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from stripe_webhook_receiver.signing import SignatureError, SigningSecret, verify

JS_DIR = Path(__file__).parent / "js"
SCRIPT = """
const Stripe = require('stripe');
const stripe = Stripe('sk_test_unused');
const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));
console.log(JSON.stringify(cases.map(c => stripe.webhooks.generateTestHeaderString(c))));
"""


def node_headers(cases: list[dict[str, object]]) -> list[str]:
    node = shutil.which("node")
    assert node, "node is required; install Node.js (Debian package `nodejs`)."
    assert (JS_DIR / "node_modules" / "stripe").is_dir(), "run `make node` to install stripe-node"
    done = subprocess.run(
        [node, "-e", SCRIPT],
        input=json.dumps(cases),
        capture_output=True,
        text=True,
        cwd=JS_DIR,
        timeout=60,
        check=True,
    )
    headers: list[str] = json.loads(done.stdout)
    return headers


def test_headers_from_stripe_node_verify_and_tampered_ones_do_not() -> None:
    now = datetime.now(UTC).replace(microsecond=0)
    stamp = int(now.timestamp())
    payload = json.dumps({"id": "evt_node", "type": "customer.subscription.updated", "é": "ü"})
    cases: list[dict[str, object]] = [
        {"payload": payload, "secret": "whsec_node_one", "timestamp": stamp},
        {"payload": payload, "secret": "whsec_node_two", "timestamp": stamp - 299},
        {"payload": payload, "secret": "whsec_node_one", "timestamp": stamp + 1000},
        {"payload": payload, "secret": "whsec_elsewhere", "timestamp": stamp},
    ]
    headers = node_headers(cases)
    secrets = [
        SigningSecret.of("whsec_node_one"),
        SigningSecret.of("whsec_node_two", now + timedelta(hours=1)),
    ]
    body = payload.encode()
    assert verify(body, headers[0], secrets, now=now, tolerance=300).fingerprint == (
        secrets[0].fingerprint
    )
    assert verify(body, headers[1], secrets, now=now, tolerance=300).fingerprint == (
        secrets[1].fingerprint
    )
    for header, reason in (
        (headers[2], "timestamp_outside_tolerance"),
        (headers[3], "no_matching_signature"),
    ):
        with pytest.raises(SignatureError) as caught:
            verify(body, header, secrets, now=now, tolerance=300)
        assert caught.value.reason == reason
    with pytest.raises(SignatureError) as caught:
        verify((payload + " ").encode(), headers[0], secrets, now=now, tolerance=300)
    assert caught.value.reason == "no_matching_signature"
