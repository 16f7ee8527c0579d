"""Coverage-guided fuzzing (atheris, libFuzzer) of the receiver's parsing and verification
functions, one target per process:

    python -m tests.reliability.fuzz_parsers TARGET [libFuzzer flags, e.g. -runs=20000]

Targets: `signature` (`signing.verify` on any header, body and time, and the sign/verify round
trip), `event` (`events.parse_envelope` and `parse_subscription` on raw bytes and on mutated
Stripe events), `webhook_file` (`secrets.parse_webhook_file`, what the operator writes). Each
may raise only the error its module documents (SignatureError, EventError, SecretsFileError),
whose message must hold no secret; anything else is a finding: libFuzzer stops, writes the
input under `-artifact_prefix` and exits non-zero.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import atheris

with atheris.instrument_imports():
    from stripe_webhook_receiver import events, secrets, signing

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
TOLERANCE = 300
LIVE = "whsec_fuzz_live_secret"
EXPIRED = "whsec_fuzz_expired_secret"
SECRETS = (
    signing.SigningSecret.of(LIVE),
    signing.SigningSecret.of(EXPIRED, NOW - timedelta(seconds=1)),
)
# A Stripe event to mutate: most inputs then get past the JSON decoder into the readers.
TEMPLATE: dict[str, Any] = {
    "id": "evt_1",
    "type": "customer.subscription.updated",
    "created": 1795000000,
    "livemode": False,
    "data": {
        "object": {
            "id": "sub_1",
            "customer": "cus_1",
            "status": "active",
            "cancel_at_period_end": False,
            "canceled_at": None,
            "items": {
                "data": [
                    {
                        "price": {"id": "price_1", "product": "prod_1"},
                        "current_period_start": 1795000000,
                        "current_period_end": 1797592000,
                    }
                ]
            },
        }
    },
}


def _no_secret(text: str) -> None:
    if LIVE in text or EXPIRED in text:
        raise AssertionError(f"an error message shows a secret: {text!r}")


def _value(data: atheris.FuzzedDataProvider, depth: int = 0) -> Any:
    """A JSON value chosen by the fuzzer's bytes (so coverage guides its shape too)."""
    kind = data.ConsumeIntInRange(0, 8 if depth < 3 else 5)
    if kind == 0:
        return None
    if kind == 1:
        return data.ConsumeBool()
    if kind == 2:
        return data.ConsumeInt(9)
    if kind == 3:
        return data.ConsumeRegularFloat()
    if kind in (4, 5):
        return data.ConsumeUnicode(data.ConsumeIntInRange(0, 300))
    if kind == 6:
        return [_value(data, depth + 1) for _ in range(data.ConsumeIntInRange(0, 3))]
    return {data.ConsumeUnicode(8): _value(data, depth + 1) for _ in range(3)}


def _mutated_event(data: atheris.FuzzedDataProvider) -> bytes:
    event = json.loads(json.dumps(TEMPLATE))
    for _ in range(data.ConsumeIntInRange(1, 4)):
        target: Any = event
        for _ in range(data.ConsumeIntInRange(0, 5)):
            if isinstance(target, dict) and target:
                keys = sorted(target)
                child = target[keys[data.ConsumeIntInRange(0, len(keys) - 1)]]
            elif isinstance(target, list) and target:
                child = target[data.ConsumeIntInRange(0, len(target) - 1)]
            else:
                break
            if not isinstance(child, dict | list):
                break
            target = child
        if isinstance(target, dict) and target:
            keys = sorted(target)
            key = keys[data.ConsumeIntInRange(0, len(keys) - 1)]
            if data.ConsumeBool():
                del target[key]
            else:
                target[key] = _value(data)
    return json.dumps(event).encode("utf-8", "surrogatepass")


def fuzz_signature(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    payload = data.ConsumeBytes(data.ConsumeIntInRange(0, 512))
    if data.ConsumeBool():
        # A well-formed header with fuzzed parts: a time near now, some `v1` entries.
        stamp = int(NOW.timestamp()) + data.ConsumeIntInRange(-2 * TOLERANCE, 2 * TOLERANCE)
        parts = [f"t={stamp}"]
        for _ in range(data.ConsumeIntInRange(0, 4)):
            parts.append(data.ConsumeUnicode(70))
        if data.ConsumeBool():
            key = LIVE if data.ConsumeBool() else EXPIRED
            parts.append("v1=" + signing.compute_signature(payload, stamp, key.encode()).decode())
        header: str | None = ",".join(parts)
    else:
        header = data.ConsumeUnicode(data.ConsumeIntInRange(0, 10_000)) or None
    try:
        matched = signing.verify(payload, header, SECRETS, now=NOW, tolerance=TOLERANCE)
    except signing.SignatureError as exc:
        if exc.reason not in signing.REASONS:
            raise AssertionError(f"unknown reason {exc.reason!r}") from exc
        _no_secret(exc.message)
    else:
        # Only the live secret verifies, and only by a signature of this very payload.
        if matched is not SECRETS[0]:
            raise AssertionError("a secret past its not_after verified")
    # The round trip: what `sign` makes, `verify` accepts, naming the secret that signed.
    stamp = int(NOW.timestamp())
    header = signing.sign(payload, [LIVE], stamp)
    if signing.verify(payload, header, SECRETS, now=NOW, tolerance=TOLERANCE) is not SECRETS[0]:
        raise AssertionError("a fresh signature did not verify")


def fuzz_event(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    body = _mutated_event(data) if data.ConsumeBool() else data.ConsumeBytes(100_000)
    try:
        envelope = events.parse_envelope(body)
        if envelope.event_type == events.SUBSCRIPTION_UPDATED or data.ConsumeBool():
            event = events.parse_subscription(envelope)
            # What the store binds must encode: a lone surrogate here would be a 500.
            state = event.state
            for value in (event.event_id, state.subscription_id, state.status, state.customer,
                          state.product_id, state.price_id):  # fmt: skip
                if value is not None:
                    value.encode("utf-8")
            if not isinstance(event.order, tuple):
                raise AssertionError("no ordering key")
    except events.EventError as exc:
        if not exc.message or not exc.code:
            raise AssertionError("an EventError without a code or message") from exc


def fuzz_webhook_file(raw: bytes) -> None:
    data = atheris.FuzzedDataProvider(raw)
    # Mostly what the operator writes, so that most inputs get past the first checks.
    name = "billing.app.json" if data.ConsumeProbability() < 0.9 else data.ConsumeUnicode(40)
    if data.ConsumeProbability() < 0.8:
        digest = "ab" * 32 if data.ConsumeBool() else data.ConsumeUnicode(64)
        content = json.dumps(
            {
                "webhook": "billing/app"
                if data.ConsumeProbability() < 0.9
                else data.ConsumeUnicode(20),
                "endpoint_id": "we_1" if data.ConsumeBool() else _value(data),
                "livemode": False if data.ConsumeBool() else _value(data),
                "signing_secrets": [
                    {"secret": LIVE, "not_after": _value(data)},
                    {"secret": _value(data), "not_after": data.ConsumeUnicode(30)},
                ][: data.ConsumeIntInRange(0, 2)],
                "receipts_api_key_sha256": digest,
                "entitlements": _value(data),
            }
        ).encode("utf-8", "surrogatepass")
    else:
        content = data.ConsumeBytes(20_000)
    try:
        config = secrets.parse_webhook_file(name, content)
    except secrets.SecretsFileError as exc:
        _no_secret(str(exc))
    else:
        _no_secret(repr(config))


TARGETS: dict[str, Callable[[bytes], None]] = {
    "signature": fuzz_signature,
    "event": fuzz_event,
    "webhook_file": fuzz_webhook_file,
}


def main(argv: list[str]) -> None:
    """Fuzz the target named by argv[1] with the libFuzzer flags after it."""
    target = TARGETS[argv[1]]
    atheris.Setup([argv[0], *argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
