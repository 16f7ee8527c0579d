"""Hostile requests to the real receiver process, beyond the signature headers and bodies that
tests/receiver already fuzzes: paths with traversal attempts, every method, any content type,
oversized and unicode headers, and bodies that stall or trickle. Never a 500, never a hang: an
answer within a timeout, and from the application a JSON error with a code and a message."""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from devstack.project.receiver_process import ReceiverProcess
from tests.receiver.layout import project, webhook_file
from tests.receiver.payloads import signed, subscription_event
from tests.reliability.ledger import Ledger, trials

pytestmark = pytest.mark.integration

SECRET = "whsec_fuzz_app"
KEY = "rk_fuzz_app_key"
PATH = "/webhooks/billing/app"
ANSWER_TIMEOUT = 30.0
SCENARIO = "Hostile requests to the receiver (hypothesis)"


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    workdir = tmp_path_factory.mktemp("fuzz")
    secrets_dir = workdir / "secrets"
    project(secrets_dir, dict([webhook_file("billing/app", [(SECRET, None)], KEY)]))
    # A file outside the secrets directory that a traversal would reach.
    (workdir / "etc.passwd.json").write_text("{}")
    process = ReceiverProcess(workdir, secrets_dir, f"sqlite:///{workdir}/fuzz.db").start()
    yield process
    process.stop()
    assert "Traceback" not in process.log()


def raw(
    receiver: ReceiverProcess,
    method: str,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    """Send one request as given (no path normalisation) and return status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", receiver.port, timeout=ANSWER_TIMEOUT)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def assert_json_error(status: int, body: bytes, allowed: set[int]) -> str:
    assert status in allowed, (status, body[:200])
    error = json.loads(body)["error"]
    assert error["message"]
    return str(error["code"])


segment = st.one_of(
    st.sampled_from(["..", ".", "%2e%2e", "..%2f..", "%2F", "etc", "passwd", "billing", "app"]),
    st.text(
        alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zs"), blacklist_characters="?#"),
        min_size=1,
        max_size=20,
    ),
)


@settings(max_examples=trials(80, 400), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(segments=st.lists(segment, min_size=0, max_size=5))
@example(segments=["..", "..", "%2F"])  # was a bare 307 to /webhooks/../..
@example(segments=["billing", "app", ""])  # a trailing slash: no redirect, a JSON 404
def test_paths_never_reach_another_file_or_a_500(
    receiver: ReceiverProcess, segments: list[str]
) -> None:
    path = "/webhooks/" + "/".join(quote(s, safe="%.:@!$&'()*+,;=~") for s in segments)
    body, headers = signed(subscription_event("sub_fuzz"), [SECRET])
    status, answer = raw(receiver, "POST", path, body, headers)
    if path == PATH:
        assert status in (200, 422)
        return
    code = assert_json_error(status, answer, {404, 405})
    assert code in {"not_found", "webhook_not_found", "method_not_allowed"}


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
def test_other_methods_on_the_webhook_path_are_405(receiver: ReceiverProcess, method: str) -> None:
    status, answer = raw(receiver, method, PATH, b"{}")
    assert assert_json_error(status, answer, {405}) == "method_not_allowed"


@pytest.mark.parametrize("method", ["BREW", "FOO-BAR"])
def test_a_method_http_does_not_know_is_a_json_400(receiver: ReceiverProcess, method: str) -> None:
    # The HTTP parser refuses it before the app runs; the answer keeps the JSON error shape.
    status, answer = raw(receiver, method, PATH, b"{}")
    assert assert_json_error(status, answer, {400}) == "invalid_http_request"


@settings(max_examples=trials(40, 200), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    content_type=st.one_of(
        st.sampled_from(["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                         "application/json; charset=utf-16", "", "*/*"]),
        st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80),
    )
)  # fmt: skip
def test_any_content_type_is_judged_by_the_signed_bytes(
    receiver: ReceiverProcess, content_type: str, ledger: Ledger
) -> None:
    body, headers = signed(subscription_event("sub_ctype"), [SECRET])
    headers["Content-Type"] = content_type.strip()
    status, answer = raw(receiver, "POST", PATH, body, headers)
    ledger.row(SCENARIO).add(events_sent=1)
    assert status == 422, answer  # verified and parsed; no receipt for this subscription
    assert json.loads(answer)["error"]["code"] == "receipt_not_found"


@pytest.mark.parametrize("size", [8 * 1024, 64 * 1024, 1024 * 1024])
def test_oversized_signature_headers_are_refused_not_crashed(
    receiver: ReceiverProcess, size: int
) -> None:
    body, headers = signed(subscription_event("sub_big"), [SECRET])
    headers["Stripe-Signature"] += ",v1=" + "a" * size
    try:
        status, answer = raw(receiver, "POST", PATH, body, headers)
    except (ConnectionError, http.client.RemoteDisconnected):
        return  # the server hung up on a header past its limit: refused, and still up
    assert status < 500, (status, answer[:200])
    assert raw(receiver, "GET", "/healthz")[0] == 200


def stalled(receiver: ReceiverProcess, trickle: bool) -> bytes:
    """Send the head and part of a signed body, then stall (or send a byte a second)."""
    body, headers = signed(subscription_event("sub_slow"), [SECRET])
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with socket.create_connection(("127.0.0.1", receiver.port), timeout=ANSWER_TIMEOUT) as sock:
        sock.sendall(
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
            + body[:50]
        )
        answer = b""
        if trickle:
            sock.setblocking(False)
            for byte in body[50:70]:
                sock.sendall(bytes([byte]))
                time.sleep(1.0)
                try:
                    answer = sock.recv(65536)
                except BlockingIOError:
                    continue
                if answer:
                    break
            sock.setblocking(True)
        while b"}}" not in answer and (chunk := sock.recv(65536)):
            answer += chunk
        return answer


def test_stalled_and_trickling_bodies_get_408_and_starve_no_one(
    receiver: ReceiverProcess, ledger: Ledger
) -> None:
    answers: list[bytes] = []
    clients = [
        threading.Thread(target=lambda t=t: answers.append(stalled(receiver, t)), daemon=True)
        for t in (False, True, False, True)
    ]
    for client in clients:
        client.start()
    time.sleep(1.0)
    # Meanwhile an honest delivery is answered at once.
    body, headers = signed(subscription_event("sub_honest"), [SECRET])
    assert raw(receiver, "POST", PATH, body, headers)[0] == 422
    for client in clients:
        client.join(ANSWER_TIMEOUT)
    ledger.row(SCENARIO).add(trials=1, events_sent=len(clients) + 1)
    assert len(answers) == len(clients)
    for answer in answers:
        assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
        assert b'"request_timeout"' in answer
