"""The receiver as a real process under uvicorn on 127.0.0.1: every status code of its API."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devstack.processes import wait_until
from devstack.project.receiver_process import ReceiverProcess
from stripe_webhook_receiver.signing import REASONS, fingerprint
from tests.receiver.layout import project, webhook_file
from tests.receiver.payloads import ACACIA, deleted_event, signed, subscription_event

pytestmark = pytest.mark.integration

WEBHOOK = "billing/app"
PATH = "/webhooks/billing/app"
KEY = "rk_app_key"
OTHER_KEY = "rk_other_key"
NEW, OLD, EXPIRED, OTHER = "whsec_new_1", "whsec_old_1", "whsec_expired_1", "whsec_other_1"
# A webhook whose StripeWebhook enabled immediate cancellations too.
CANCELS_PATH = "/webhooks/billing/cancels"
CANCELS_KEY, CANCELS_SECRET = "rk_cancels_key", "whsec_cancels_1"
UPDATED, DELETED = "customer.subscription.updated", "customer.subscription.deleted"


def layout(new: str = NEW) -> dict[str, bytes]:
    soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    past = (datetime.now(UTC) - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return dict(
        [
            webhook_file(WEBHOOK, [(new, None), (OLD, soon), (EXPIRED, past)], KEY),
            webhook_file("shop/other", [(OTHER, None)], OTHER_KEY),
            webhook_file(
                "billing/cancels",
                [(CANCELS_SECRET, None)],
                CANCELS_KEY,
                enabled_events=[UPDATED, DELETED],
            ),
        ]
    )


@pytest.fixture(scope="module")
def secrets_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("secrets")
    project(directory, layout())
    return directory


@pytest.fixture(scope="module")
def receiver(
    tmp_path_factory: pytest.TempPathFactory, secrets_dir: Path
) -> Iterator[ReceiverProcess]:
    workdir = tmp_path_factory.mktemp("receiver")
    process = ReceiverProcess(workdir, secrets_dir, f"sqlite:///{workdir}/receiver.db").start()
    yield process
    process.stop()
    assert "Traceback" not in process.log()


@pytest.fixture(scope="module")
def client(receiver: ReceiverProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=receiver.url, timeout=10) as http:
        yield http


def auth(key: str = KEY) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


def deliver(
    client: httpx.Client,
    event: dict[str, object] | bytes,
    *secrets: str,
    timestamp: int | None = None,
    path: str = PATH,
) -> httpx.Response:
    body, headers = signed(event, list(secrets or (NEW,)), timestamp)
    return client.post(path, content=body, headers=headers)


def error_code(response: httpx.Response) -> str:
    code: str = response.json()["error"]["code"]
    assert response.json()["error"]["message"]
    return code


def test_unknown_webhook_is_404(client: httpx.Client) -> None:
    response = deliver(client, subscription_event("sub_x"), path="/webhooks/billing/nope")
    assert response.status_code == 404
    assert error_code(response) == "webhook_not_found"
    assert client.post("/webhooks/../etc/passwd", content=b"{}").status_code == 404


def test_a_body_over_1_mib_is_413_counting_streamed_bytes(client: httpx.Client) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(17):
            yield b"x" * 65536  # 17 x 64 KiB > 1 MiB, sent chunked without Content-Length

    response = client.post(PATH, content=chunks(), headers={"Stripe-Signature": "t=1,v1=0"})
    assert response.status_code == 413
    assert error_code(response) == "payload_too_large"
    exactly = client.post(PATH, content=b"x" * 1024 * 1024, headers={"Stripe-Signature": "t=1"})
    assert exactly.status_code == 400


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (None, "missing_header"),
        ("t=1700000000", "no_v1_signature"),
        ("v1=abcd", "bad_timestamp"),
        ("t=yesterday,v1=abcd", "bad_timestamp"),
    ],
)
def test_malformed_signature_headers_are_400_with_reason(
    client: httpx.Client, header: str | None, reason: str
) -> None:
    headers = {} if header is None else {"Stripe-Signature": header}
    response = client.post(PATH, content=b"{}", headers=headers)
    assert response.status_code == 400
    assert error_code(response) == reason


@pytest.mark.parametrize("offset", [-400, 400])
def test_timestamps_outside_tolerance_are_400_past_and_future(
    client: httpx.Client, offset: int
) -> None:
    response = deliver(client, subscription_event("sub_t"), timestamp=int(time.time()) + offset)
    assert response.status_code == 400
    assert error_code(response) == "timestamp_outside_tolerance"


def test_wrong_expired_and_other_apps_secrets_are_400(client: httpx.Client) -> None:
    for secret in ("whsec_wrong", EXPIRED, OTHER):
        response = deliver(client, subscription_event("sub_w"), secret)
        assert response.status_code == 400
        assert error_code(response) == "no_matching_signature"


def test_other_event_types_are_400_naming_the_accepted_type(client: httpx.Client) -> None:
    event = subscription_event("sub_type", event_type="customer.subscription.deleted")
    response = deliver(client, event)
    assert response.status_code == 400
    assert error_code(response) == "unsupported_event_type"
    assert "customer.subscription.updated" in response.json()["error"]["message"]
    assert response.json()["error"]["message"] == (
        f"Only `{UPDATED}` events are accepted; set the endpoint's `enabled_events` to "
        f"['{UPDATED}']."
    )


def test_a_deletion_ends_the_subscription_where_the_webhook_enabled_it(
    client: httpx.Client,
) -> None:
    now = int(time.time())
    registered = client.post(
        "/v1/receipts",
        json={"app_user_id": "carol", "fetch_token": "sub_cancel"},
        headers=auth(CANCELS_KEY),
    )
    assert registered.status_code == 201
    active = subscription_event("sub_cancel", created=now - 10, period_end=now + 3600)
    applied = deliver(client, active, CANCELS_SECRET, path=CANCELS_PATH)
    assert applied.json() == {"outcome": "applied"}
    before = client.get("/v1/subscribers/carol", headers=auth(CANCELS_KEY)).json()["subscriber"]
    assert set(before["entitlements"]) == {"premium"}

    deletion = deleted_event("sub_cancel", ended_at=now, period_end=now + 3600)
    answered = deliver(client, deletion, CANCELS_SECRET, path=CANCELS_PATH)
    assert answered.status_code == 200
    assert answered.json() == {"outcome": "applied"}
    # A late copy of an update (a Stripe retry, a recovery) does not bring it back.
    late = subscription_event("sub_cancel", created=now - 5, period_end=now + 3600)
    assert deliver(client, late, CANCELS_SECRET, path=CANCELS_PATH).json() == {"outcome": "stale"}

    after = client.get("/v1/subscribers/carol", headers=auth(CANCELS_KEY)).json()["subscriber"]
    state = after["subscriptions"]["prod_premium"]
    assert state["status"] == "canceled"
    assert state["ended_at"] == state["expires_date"] == state["canceled_at"]
    assert after["entitlements"] == {}


def test_a_webhook_with_both_types_names_both_when_refusing_another(
    client: httpx.Client,
) -> None:
    event = subscription_event("sub_type2", event_type="invoice.paid")
    response = deliver(client, event, CANCELS_SECRET, path=CANCELS_PATH)
    assert response.status_code == 400
    assert error_code(response) == "unsupported_event_type"
    assert response.json()["error"]["message"] == (
        f"Only `{UPDATED}` and `{DELETED}` events are accepted; set the endpoint's "
        f"`enabled_events` to ['{UPDATED}', '{DELETED}']."
    )


def test_unreadable_verified_bodies_are_400(client: httpx.Client) -> None:
    for body in (b"not json", b'{"id": "evt_1", "type": 3, "created": 1}'):
        response = deliver(client, body)
        assert response.status_code == 400
        assert error_code(response) == "invalid_event"


def test_lifecycle_422_then_receipt_replays_then_duplicate_and_stale(client: httpx.Client) -> None:
    now = int(time.time())
    event = subscription_event(
        "sub_life",
        status="trialing",
        created=now,
        trial_end=now + 600,
        period_end=now + 600,
        api_version=ACACIA,
    )
    first = deliver(client, event)
    assert first.status_code == 422
    assert error_code(first) == "receipt_not_found"

    registered = client.post(
        "/v1/receipts", json={"app_user_id": "alice", "fetch_token": "sub_life"}, headers=auth()
    )
    assert registered.status_code == 201
    subscription = registered.json()["subscriber"]["subscriptions"]["prod_premium"]
    assert subscription["period_type"] == "trial"
    assert subscription["store"] == "stripe"
    assert registered.json()["subscriber"]["entitlements"]["premium"]["product_identifier"] == (
        "prod_premium"
    )
    again = client.post(
        "/v1/receipts", json={"app_user_id": "alice", "fetch_token": "sub_life"}, headers=auth()
    )
    assert again.status_code == 200

    retry = deliver(client, event, NEW, OLD)  # Stripe's retry; both secrets during the overlap
    assert retry.status_code == 200
    assert retry.json() == {"outcome": "duplicate"}

    newer = subscription_event(
        "sub_life",
        status="past_due",
        created=now + 5,
        period_end=now + 600,
        cancel_at_period_end=True,
        canceled_at=now,
    )
    assert deliver(client, newer, OLD).json() == {"outcome": "applied"}
    older = subscription_event("sub_life", status="active", created=now + 1)
    assert deliver(client, older).json() == {"outcome": "stale"}

    document = client.get("/v1/subscribers/alice", headers=auth()).json()["subscriber"]
    state = document["subscriptions"]["prod_premium"]
    assert state["status"] == "past_due"
    assert state["billing_issues_detected_at"] is not None
    assert state["unsubscribe_detected_at"] is not None
    assert state["cancel_at_period_end"] is True
    assert "premium" in document["entitlements"]  # past_due keeps access within the period


def test_every_delivery_is_recorded_with_outcome_status_and_fingerprint(
    client: httpx.Client, receiver: ReceiverProcess
) -> None:
    import sqlite3

    event = subscription_event("sub_rec", created=int(time.time()))
    assert deliver(client, event, OLD).status_code == 422
    assert deliver(client, event, "whsec_wrong").status_code == 400
    path = receiver.database_url.removeprefix("sqlite:///")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        rows = connection.execute(
            "SELECT event_id, event_type, outcome, status_code, secret_fingerprint, received_at, "
            "payload IS NOT NULL FROM deliveries WHERE webhook = ? ORDER BY id DESC LIMIT 2",
            (WEBHOOK,),
        ).fetchall()
    refused, kept = rows
    assert kept[:5] == (
        event["id"],
        "customer.subscription.updated",
        "receipt_not_found",
        422,
        fingerprint(OLD),
    )
    assert kept[5] > 0
    assert kept[6] == 1  # the verified payload waits for the receipt
    assert refused[2:5] == ("no_matching_signature", 400, None)
    assert refused[6] == 0


def test_receipts_require_the_apps_key_and_conflict_across_users(client: httpx.Client) -> None:
    body = {"app_user_id": "bob", "fetch_token": "sub_bob"}
    assert client.post("/v1/receipts", json=body).status_code == 401
    denied = client.post("/v1/receipts", json=body, headers=auth("nope"))
    assert denied.status_code == 401
    assert error_code(denied) == "unauthorized"
    assert client.post("/v1/receipts", json=body, headers=auth()).status_code == 201
    stolen = client.post(
        "/v1/receipts", json={"app_user_id": "eve", "fetch_token": "sub_bob"}, headers=auth()
    )
    assert stolen.status_code == 409
    assert error_code(stolen) == "fetch_token_in_use"
    for bad in ({"app_user_id": "x"}, {"app_user_id": "x", "fetch_token": "cus_1"}, [1]):
        response = client.post("/v1/receipts", json=bad, headers=auth())
        assert response.status_code == 400
        assert error_code(response) == "invalid_request"
    # `\ud800` in JSON is a lone surrogate, which the database cannot store: a 400, not a 500.
    unpaired = b'{"app_user_id": "x\\ud800", "fetch_token": "sub_surrogate"}'
    response = client.post("/v1/receipts", content=unpaired, headers=auth())
    assert response.status_code == 400
    assert error_code(response) == "invalid_request"


def test_one_apps_key_never_reads_or_writes_another_apps_data(client: httpx.Client) -> None:
    now = int(time.time())
    client.post(
        "/v1/receipts", json={"app_user_id": "carol", "fetch_token": "sub_carol"}, headers=auth()
    )
    deliver(client, subscription_event("sub_carol", created=now))
    theirs = client.get("/v1/subscribers/carol", headers=auth(OTHER_KEY))
    assert theirs.status_code == 200
    assert theirs.json()["subscriber"]["subscriptions"] == {}
    # The other app registering the same token does not touch ours.
    client.post(
        "/v1/receipts",
        json={"app_user_id": "mallory", "fetch_token": "sub_carol"},
        headers=auth(OTHER_KEY),
    )
    ours = client.get("/v1/subscribers/carol", headers=auth()).json()["subscriber"]
    assert list(ours["subscriptions"]) == ["prod_premium"]
    mallory = client.get("/v1/subscribers/mallory", headers=auth(OTHER_KEY)).json()
    assert mallory["subscriber"]["subscriptions"] == {}


def test_health_readiness_fingerprints_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").json()["status"] == "ready"
    held = client.get("/readyz/webhooks/billing/app").json()
    assert held == {
        "webhook": WEBHOOK,
        "endpoint_id": "we_test",
        "fingerprints": [fingerprint(NEW), fingerprint(OLD)],
    }
    missing = client.get("/readyz/webhooks/billing/absent")
    assert missing.status_code == 404
    assert error_code(missing) == "webhook_not_found"
    deliver(client, subscription_event("sub_metrics"), "whsec_wrong")
    text = client.get("/metrics").text
    assert 'stripe_webhook_receiver_verification_failures_total{reason="no_matching_signature"' in (
        text.replace('webhook="billing/app",', "")
    )
    assert "stripe_webhook_receiver_processing_seconds_bucket" in text
    assert "stripe_webhook_receiver_secret_reloads_total" in text


def test_unknown_paths_and_methods_answer_json_errors(client: httpx.Client) -> None:
    assert error_code(client.get("/nowhere")) == "not_found"
    wrong = client.get(PATH)
    assert wrong.status_code == 405
    assert error_code(wrong) == "method_not_allowed"


def test_a_kubelet_style_swap_is_picked_up_without_restart(
    client: httpx.Client, secrets_dir: Path
) -> None:
    rotated = "whsec_rotated_2"

    def held() -> list[str]:
        fingerprints: list[str] = client.get("/readyz/webhooks/billing/app").json()["fingerprints"]
        return fingerprints

    project(secrets_dir, layout(new=rotated))
    wait_until(lambda: fingerprint(rotated) in held(), timeout=5, what="the rotated secret")
    assert deliver(client, subscription_event("sub_rot"), rotated).status_code == 422

    # A half-written file keeps the last good set and is reported.
    name, content = webhook_file(WEBHOOK, [("whsec_never", None)], KEY)
    project(secrets_dir, {**layout(new=rotated), name: content[:20]})
    wait_until(
        lambda: "stripe_webhook_receiver_secret_files_broken 1.0" in client.get("/metrics").text,
        timeout=5,
        what="the broken file reported",
    )
    assert fingerprint(rotated) in held()
    assert deliver(client, subscription_event("sub_rot2"), rotated).status_code == 422
    project(secrets_dir, layout())
    wait_until(lambda: fingerprint(NEW) in held(), timeout=5, what="the restored secret")


def test_logs_hold_no_secret_key_or_payload(receiver: ReceiverProcess) -> None:
    text = receiver.log()
    for secret in (NEW, OLD, EXPIRED, OTHER, KEY, OTHER_KEY, "whsec_rotated_2", CANCELS_SECRET):
        assert secret not in text
    assert hashlib.sha256(KEY.encode()).hexdigest() not in text
    assert '"current_period_end"' not in text
    for line in text.splitlines():
        json.loads(line)


def test_sigterm_finishes_the_request_in_flight(tmp_path: Path, secrets_dir: Path) -> None:
    import signal
    import socket

    process = ReceiverProcess(tmp_path, secrets_dir, f"sqlite:///{tmp_path}/g.db").start()
    try:
        body, headers = signed(subscription_event("sub_graceful"), [NEW])
        head = (
            f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Stripe-Signature: {headers['Stripe-Signature']}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", process.port), timeout=20) as sock:
            sock.sendall(head + body[:100])
            assert process.process.popen is not None
            process.process.popen.send_signal(signal.SIGTERM)
            wait_until(lambda: "Shutting down" in process.log(), timeout=20, what="shutdown")
            sock.sendall(body[100:])
            answer = b""
            while chunk := sock.recv(65536):
                answer += chunk
        assert answer.startswith(b"HTTP/1.1 422"), answer[:200]
        process.process.popen.wait(timeout=30)
    finally:
        process.stop()


# Any character a client can put in a header (no control characters; h11 refuses those).
header_text = st.text(alphabet=st.characters(blacklist_categories=("Cc", "Cs")), max_size=300)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    header=st.one_of(
        st.none(),
        header_text,
        st.builds(
            lambda t, sigs: f"t={t}," + ",".join(f"v1={s}" for s in sigs),
            st.one_of(st.integers(), header_text),
            st.lists(header_text, max_size=5),
        ),
    ),
    body=st.one_of(
        st.binary(max_size=2000),
        st.recursive(
            st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text()),
            lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
            max_leaves=30,
        ).map(lambda value: json.dumps(value).encode()),
    ),
)
def test_hostile_headers_and_bodies_get_a_400_never_a_500(
    client: httpx.Client, header: str | None, body: bytes
) -> None:
    value = None if header is None else header.strip().encode("utf-8")
    headers = {} if not value else {"Stripe-Signature": value}
    response = client.post(PATH, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] in REASONS


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    mutation=st.sampled_from(
        [
            ("id", None),
            ("created", "soon"),
            ("type", ["customer.subscription.updated"]),
            ("data", {"object": {"id": 1}}),
            ("data", {"object": {"id": "sub_x", "status": "active", "items": {"data": [7]}}}),
            ("data", {"object": {"id": "sub_x", "status": "active", "items": "none"}}),
            ("data", {"object": {"id": "sub_x", "status": None}}),
            ("data", {"object": {"id": "sub_x", "status": "active", "current_period_end": 1e309}}),
        ]
    ),
)
def test_signed_events_with_wrong_types_get_invalid_event(
    client: httpx.Client, mutation: tuple[str, object]
) -> None:
    event = subscription_event("sub_types")
    event[mutation[0]] = mutation[1]
    body, headers = signed(json.dumps(event).encode(), [NEW])
    response = client.post(PATH, content=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_event"
