"""The verifier: Stripe's header format, tolerance both ways, overlapping and expired secrets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from stripe_webhook_receiver.signing import (
    SecretText,
    SignatureError,
    SigningSecret,
    compute_signature,
    fingerprint,
    sign,
    verify,
)

NOW = datetime(2026, 11, 27, 12, 0, 0, tzinfo=UTC)
T = int(NOW.timestamp())
BODY = b'{"id": "evt_1", "type": "customer.subscription.updated"}'


def reason(body: bytes, header: str | None, secrets: list[SigningSecret], **kw: int) -> str:
    with pytest.raises(SignatureError) as caught:
        verify(body, header, secrets, now=NOW, tolerance=kw.get("tolerance", 300))
    return caught.value.reason


def test_known_vector_matches_hmac_sha256_of_timestamp_dot_body() -> None:
    # Computed independently: HMAC-SHA256(key="whsec_test", msg="1700000000.{}")
    import hashlib
    import hmac

    expected = hmac.new(b"whsec_test", b"1700000000.{}", hashlib.sha256).hexdigest()
    assert compute_signature(b"{}", 1700000000, b"whsec_test").decode() == expected
    assert sign(b"{}", ["whsec_test"], 1700000000) == f"t=1700000000,v1={expected}"


def test_a_correct_signature_verifies_and_names_the_secret() -> None:
    secret = SigningSecret.of("whsec_one")
    matched = verify(BODY, sign(BODY, ["whsec_one"], T), [secret], now=NOW, tolerance=300)
    assert matched.fingerprint == fingerprint("whsec_one")


def test_a_changed_body_does_not_verify() -> None:
    header = sign(BODY, ["whsec_one"], T)
    assert reason(BODY + b" ", header, [SigningSecret.of("whsec_one")]) == "no_matching_signature"


def test_missing_header_and_missing_v1_and_bad_timestamps_have_their_reasons() -> None:
    secrets = [SigningSecret.of("whsec_one")]
    assert reason(BODY, None, secrets) == "missing_header"
    assert reason(BODY, "", secrets) == "missing_header"
    assert reason(BODY, f"t={T}", secrets) == "no_v1_signature"
    assert reason(BODY, f"t={T},v0=abc", secrets) == "no_v1_signature"
    assert reason(BODY, "v1=abc", secrets) == "bad_timestamp"
    assert reason(BODY, "t=soon,v1=abc", secrets) == "bad_timestamp"
    assert reason(BODY, f"t={T},t={T},v1=abc", secrets) == "bad_timestamp"
    assert reason(BODY, "t=" + "9" * 40 + ",v1=abc", secrets) == "bad_timestamp"
    assert reason(BODY, "t=١٢,v1=abc", secrets) == "bad_timestamp"
    assert reason(BODY, "x" * 9000, secrets) == "malformed_header"


@pytest.mark.parametrize("offset", [-301, 301, -(10**6), 10**6])
def test_timestamps_beyond_the_tolerance_fail_in_the_past_and_in_the_future(offset: int) -> None:
    header = sign(BODY, ["whsec_one"], T + offset)
    assert reason(BODY, header, [SigningSecret.of("whsec_one")]) == "timestamp_outside_tolerance"


@pytest.mark.parametrize("offset", [-300, 300, 0])
def test_timestamps_within_the_tolerance_verify_either_way(offset: int) -> None:
    header = sign(BODY, ["whsec_one"], T + offset)
    verify(BODY, header, [SigningSecret.of("whsec_one")], now=NOW, tolerance=300)


def test_during_an_overlap_each_secret_verifies_alone_and_together() -> None:
    new = SigningSecret.of("whsec_new")
    old = SigningSecret.of("whsec_old", NOW + timedelta(hours=24))
    for signers, expected in (
        (["whsec_new"], new),
        (["whsec_old"], old),
        (["whsec_old", "whsec_new"], new),
    ):
        matched = verify(BODY, sign(BODY, signers, T), [new, old], now=NOW, tolerance=300)
        assert matched.fingerprint == expected.fingerprint


def test_an_expired_secret_no_longer_verifies() -> None:
    new = SigningSecret.of("whsec_new")
    old = SigningSecret.of("whsec_old", NOW - timedelta(seconds=1))
    header = sign(BODY, ["whsec_old"], T)
    assert reason(BODY, header, [new, old]) == "no_matching_signature"


def test_a_signature_with_another_apps_secret_fails() -> None:
    header = sign(BODY, ["whsec_other_app"], T)
    assert reason(BODY, header, [SigningSecret.of("whsec_one")]) == "no_matching_signature"


def test_extra_unknown_schemes_and_spaces_are_ignored() -> None:
    good = sign(BODY, ["whsec_one"], T).split(",")[1]
    header = f" t={T} , v0=deadbeef, {good} ,junk, v1=zz"
    verify(BODY, header, [SigningSecret.of("whsec_one")], now=NOW, tolerance=300)


def test_secrets_never_show_in_repr_or_str() -> None:
    secret = SigningSecret.of("whsec_supersecret", NOW)
    assert "supersecret" not in repr(secret)
    assert "supersecret" not in str(secret.secret)
    assert SecretText("whsec_supersecret").reveal() == "whsec_supersecret"
