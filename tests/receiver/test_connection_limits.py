"""The receiver process's connection limits, each with small values so that it shows at once:
the head deadline (idle and half-sent requests), the header size, the connection count, the
budget of unfinished bodies, and answers a client does not read."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator

import httpx
import pytest

from devstack.project.receiver_process import ReceiverProcess
from stripe_webhook_receiver.protocol import MAX_HEADERS
from tests.receiver.layout import project, webhook_file
from tests.receiver.payloads import signed, subscription_event

pytestmark = pytest.mark.integration

SECRET = "whsec_limits"
PATH = "/webhooks/billing/app"
CLIENT_TIMEOUT = 1
MAX_CONNECTIONS = 8
MAX_HEADER_BYTES = 2048
PENDING_BYTES = 64 * 1024
# Well past the client timeout: an answer later than this is a hang.
WAIT = 10.0
# uvloop's timers count whole milliseconds.
TIMER_RESOLUTION = 0.001


@pytest.fixture(scope="module")
def receiver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ReceiverProcess]:
    workdir = tmp_path_factory.mktemp("limits")
    secrets_dir = workdir / "secrets"
    project(secrets_dir, dict([webhook_file("billing/app", [(SECRET, None)], "rk_limits")]))
    process = ReceiverProcess(
        workdir,
        secrets_dir,
        f"sqlite:///{workdir}/limits.db",
        flags=(
            f"--client-timeout={CLIENT_TIMEOUT}",
            f"--max-connections={MAX_CONNECTIONS}",
            f"--max-header-bytes={MAX_HEADER_BYTES}",
            f"--max-pending-body-bytes={PENDING_BYTES}",
        ),
    ).start()
    yield process
    process.stop()
    assert "Traceback" not in process.log()


def connect(receiver: ReceiverProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", receiver.port), timeout=WAIT)


def answer_of(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection."""
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def code_of(answer: bytes) -> str:
    """The error code in the JSON body of a raw HTTP answer."""
    body = answer.split(b"\r\n\r\n", 1)[1]
    return str(json.loads(body)["error"]["code"])


def test_an_idle_connection_is_closed_after_the_client_timeout(receiver: ReceiverProcess) -> None:
    # The server's clock starts when it accepts, after ours; its event loop reads the time in
    # whole milliseconds, so its timer may end up to a millisecond short of ours.
    started = time.monotonic()
    with connect(receiver) as sock:
        assert answer_of(sock) == b""
        assert CLIENT_TIMEOUT - TIMER_RESOLUTION <= time.monotonic() - started < WAIT


@pytest.mark.parametrize("sent", [b"POST /webhooks/billing/app HTTP/1.1\r\nHost: x\r\n", b"P"])
def test_a_request_head_sent_too_slowly_gets_408(receiver: ReceiverProcess, sent: bytes) -> None:
    with connect(receiver) as sock:
        sock.sendall(sent)
        answer = answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert code_of(answer) == "request_timeout"


def test_trickled_header_bytes_do_not_reset_the_deadline(receiver: ReceiverProcess) -> None:
    with connect(receiver) as sock:
        sock.sendall(b"POST /webhooks/billing/app HTTP/1.1\r\n")
        started = time.monotonic()
        sock.setblocking(False)
        answer = b""
        while not answer and time.monotonic() - started < WAIT:
            try:
                sock.sendall(b"X-Slow: 1\r\n")
                answer = sock.recv(65536)
            except BlockingIOError:
                time.sleep(0.2)
            except ConnectionError:
                break
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert time.monotonic() - started < WAIT


def test_a_keep_alive_connection_gets_the_deadline_again_after_each_answer(
    receiver: ReceiverProcess,
) -> None:
    with connect(receiver) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        first = b""
        while not first.endswith(b"}"):  # the head and the body may come in two reads
            first += sock.recv(65536)
        assert first.startswith(b"HTTP/1.1 200 ")
        sock.sendall(b"GET /healthz HTTP/1.1\r\n")
        answer = answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_headers_past_the_limit_get_431(receiver: ReceiverProcess) -> None:
    with connect(receiver) as sock:
        sock.sendall(b"POST /webhooks/billing/app HTTP/1.1\r\nHost: x\r\n")
        sock.sendall(b"X-Big: " + b"a" * (MAX_HEADER_BYTES + 10))
        answer = answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert code_of(answer) == "header_too_large"
    assert str(MAX_HEADER_BYTES).encode() in answer


def test_headers_past_the_limit_in_one_read_get_431(receiver: ReceiverProcess) -> None:
    body, headers = signed(subscription_event("sub_big_head"), [SECRET])
    headers["X-Padding"] = "p" * (MAX_HEADER_BYTES + 10)
    head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    with connect(receiver) as sock:
        sock.sendall(
            f"POST {PATH} HTTP/1.1\r\nHost: x\r\n{head}Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        answer = answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert code_of(answer) == "header_too_large"


def test_more_than_a_hundred_headers_get_431(receiver: ReceiverProcess) -> None:
    many = "".join(f"X-{i}: v\r\n" for i in range(MAX_HEADERS + 1))
    assert len(many) < MAX_HEADER_BYTES  # the count, not the size, refuses them
    with connect(receiver) as sock:
        sock.sendall(f"GET /healthz HTTP/1.1\r\nHost: x\r\n{many}\r\n".encode())
        answer = answer_of(sock)
    assert answer.startswith(b"HTTP/1.1 431 "), answer
    assert code_of(answer) == "header_too_large"


def test_headers_within_the_limit_are_served(receiver: ReceiverProcess) -> None:
    body, headers = signed(subscription_event("sub_within"), [SECRET])
    headers["X-Padding"] = "p" * (MAX_HEADER_BYTES // 2)
    answer = httpx.post(receiver.url + PATH, content=body, headers=headers, timeout=WAIT)
    assert answer.status_code == 422  # verified; no receipt for this subscription


def test_connections_past_the_limit_get_503_and_the_rest_are_served(
    receiver: ReceiverProcess,
) -> None:
    held = [connect(receiver) for _ in range(MAX_CONNECTIONS)]
    try:
        time.sleep(0.2)  # the server has accepted them all
        with connect(receiver) as extra:
            answer = answer_of(extra)
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert code_of(answer) == "overloaded"
        assert b"retry-after: 1" in answer
    finally:
        for sock in held:
            sock.close()
    time.sleep(0.2)
    assert httpx.get(receiver.url + "/healthz", timeout=WAIT).status_code == 200


def _stalled_body(receiver: ReceiverProcess, sent: int) -> socket.socket:
    sock = connect(receiver)
    head = f"POST {PATH} HTTP/1.1\r\nHost: x\r\nContent-Length: {sent * 2}\r\n\r\n"
    sock.sendall(head.encode())
    time.sleep(0.05)  # the body arrives after the request has started: in pieces
    sock.sendall(b"x" * sent)
    return sock


def test_unfinished_bodies_past_the_budget_get_503_and_whole_ones_are_served(
    receiver: ReceiverProcess,
) -> None:
    first = _stalled_body(receiver, PENDING_BYTES // 2 + 1024)
    try:
        time.sleep(0.3)
        with _stalled_body(receiver, PENDING_BYTES // 2 + 1024) as second:
            answer = answer_of(second)
        assert answer.startswith(b"HTTP/1.1 503 "), answer
        assert code_of(answer) == "overloaded"
        # A delivery sent whole takes nothing from the budget.
        body, headers = signed(subscription_event("sub_whole"), [SECRET])
        whole = httpx.post(receiver.url + PATH, content=body, headers=headers, timeout=WAIT)
        assert whole.status_code == 422
    finally:
        first.close()
    # The stalled body's bytes come back to the budget when it ends (408 or disconnect).
    time.sleep(CLIENT_TIMEOUT + 0.5)
    with _stalled_body(receiver, PENDING_BYTES // 2 + 1024) as third:
        answer = answer_of(third)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


def test_a_client_that_never_reads_its_answers_is_disconnected(receiver: ReceiverProcess) -> None:
    request = b"GET /openapi.json HTTP/1.1\r\nHost: x\r\n\r\n"
    with connect(receiver) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < WAIT * 3:
            try:
                sock.send(request * 50)
            except BlockingIOError:
                time.sleep(0.1)
            except ConnectionError:
                closed = True
                break
    assert closed, "the server kept a connection whose client reads nothing"
    assert httpx.get(receiver.url + "/healthz", timeout=WAIT).status_code == 200
