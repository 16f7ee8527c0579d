"""Generated hostile requests to the receiver, as raw bytes, from a seeded generator.

Each case belongs to a family (headers, signatures, timestamps, bodies, JSON shapes, sizes,
encodings, paths, methods, the app-facing API) and knows whether it carries a valid proof:
a `v1` signature of its exact body, under the target webhook's secret, within the tolerance
(or, for the app-facing API, the app's receipts key). Cases without one target the guarded
webhook, whose stored state must never change; cases with one target the open webhook
(`SHAPES`), whose subscriptions have no receipts, so that the JSON they carry is read and
answered but applies to nothing the checks watch. A few cases stall on purpose (a body
shorter than its Content-Length, an unfinished head); they must be answered within the
receiver's client timeout.
"""

from __future__ import annotations

import base64
import contextlib
import gzip
import hashlib
import hmac
import json
import random
import socket
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from stripe_webhook_receiver.signing import sign

GUARDED = "billing/guarded"
SHAPES = "billing/shapes"
GUARDED_SECRET = "whsec_hostile_guarded_0123456789"
SHAPES_SECRET = "whsec_hostile_shapes_0123456789"
OTHER_SECRET = "whsec_hostile_other_app_secret"
GUARDED_KEY = "rk_hostile_guarded_key"
SHAPES_KEY = "rk_hostile_shapes_key"
GUARDED_SUBSCRIPTION = "sub_guarded"
# What no answer may ever show.
SECRETS = (
    GUARDED_SECRET,
    SHAPES_SECRET,
    OTHER_SECRET,
    GUARDED_KEY,
    SHAPES_KEY,
    hashlib.sha256(GUARDED_KEY.encode()).hexdigest(),
    hashlib.sha256(SHAPES_KEY.encode()).hexdigest(),
    "whsec_",
)
MAX_BODY = 1024 * 1024
TOLERANCE = 300


@dataclass(frozen=True)
class Case:
    """One request as sent: its family, its bytes, whether it carries a valid proof, and
    whether it stalls on purpose (the server must end it at its client timeout)."""

    family: str
    raw: bytes
    verified: bool
    stalls: bool = False


@dataclass(frozen=True)
class Answer:
    """What the server did: its status (None: it closed without an answer), the body, and
    whether it neither answered nor closed in time."""

    status: int | None
    body: bytes
    seconds: float
    hung: bool


Header = tuple[str, str]


def request(
    method: str,
    target: str,
    headers: list[Header],
    body: bytes = b"",
    *,
    framing: str = "length",
    version: str = "HTTP/1.1",
) -> bytes:
    """Build a request: `framing` is 'length' (a true Content-Length), 'chunked', or 'none'
    (the headers say it all)."""
    lines = [f"{method} {target} {version}", "Host: receiver", *(f"{k}: {v}" for k, v in headers)]
    if framing == "length":
        lines.append(f"Content-Length: {len(body)}")
    elif framing == "chunked":
        lines.append("Transfer-Encoding: chunked")
        body = chunked(body, [len(body)])
    lines.append("Connection: close")
    return "\r\n".join(lines).encode("latin-1", "replace") + b"\r\n\r\n" + body


def chunked(body: bytes, sizes: list[int]) -> bytes:
    """Frame `body` as chunks of `sizes` (the rest in one chunk), then the last chunk."""
    out, offset = b"", 0
    for size in [*sizes, len(body)]:
        piece = body[offset : offset + size]
        offset += len(piece)
        if piece:
            out += f"{len(piece):x}\r\n".encode() + piece + b"\r\n"
    return out + b"0\r\n\r\n"


def path_of(webhook: str) -> str:
    return "/webhooks/" + webhook


class Generator:
    """Hostile cases from one seed; `now` is the receiver's clock as the signer sees it."""

    def __init__(self, seed: int, now: Callable[[], int] = lambda: int(time.time())) -> None:
        self.rng = random.Random(seed)
        self.now = now
        self.serial = 0
        self.families: list[tuple[str, Callable[[], Case], int]] = [
            ("headers", self.headers, 12),
            ("signatures", self.signatures, 14),
            ("timestamps", self.timestamps, 8),
            ("bodies", self.bodies, 8),
            ("json shapes", self.json_shapes, 16),
            ("sizes", self.sizes, 6),
            ("encodings", self.encodings, 8),
            ("paths", self.paths, 10),
            ("methods", self.methods, 8),
            ("app API", self.app_api, 10),
        ]

    def case(self) -> Case:
        """Return the next case, its family drawn by weight."""
        _, makers, weights = zip(*self.families, strict=True)
        (maker,) = self.rng.choices(makers, weights=weights)
        return maker()

    # Building blocks ----------------------------------------------------------------------

    def event(self, subscription: str = "", status: str = "canceled") -> dict[str, Any]:
        """A Stripe event as Stripe sends it; by default one that would end the guarded
        subscription if it were ever applied."""
        self.serial += 1
        created = self.now()
        return {
            "id": f"evt_hostile_{self.serial}_{self.rng.getrandbits(32):08x}",
            "object": "event",
            "api_version": "2025-03-31.basil",
            "created": created,
            "type": "customer.subscription.updated",
            "livemode": False,
            "data": {
                "object": {
                    "id": subscription or GUARDED_SUBSCRIPTION,
                    "object": "subscription",
                    "customer": "cus_hostile",
                    "status": status,
                    "cancel_at_period_end": False,
                    "items": {
                        "object": "list",
                        "data": [
                            {
                                "id": "si_hostile",
                                "price": {"id": "price_x", "product": "prod_premium"},
                                "current_period_start": created - 86400,
                                "current_period_end": created + 86400 * 30,
                            }
                        ],
                    },
                }
            },
        }

    def open_subscription(self) -> str:
        return f"sub_open_{self.rng.getrandbits(40):010x}"

    def signature(self, body: bytes, secrets: list[str], at: int | None = None) -> str:
        return sign(body, secrets, self.now() if at is None else at)

    def text(self, size: int, alphabet: str = "") -> str:
        pool = alphabet or (
            "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
            "-_.~!$&'()*+,;=:@%/?#[] \t\"\\<>{}|^`\u00e9\u00ff\u0100\u2028\u202e\ufeff\U0001f600"
        )
        return "".join(self.rng.choice(pool) for _ in range(size))

    def junk(self, size: int) -> bytes:
        return self.rng.randbytes(size)

    def unverified_post(self, family: str, headers: list[Header], body: bytes) -> Case:
        return Case(family, request("POST", path_of(GUARDED), headers, body), verified=False)

    def verified_post(
        self, family: str, body: bytes, extra: Sequence[Header] = (), *, framing: str = "length"
    ) -> Case:
        headers = [("Stripe-Signature", self.signature(body, [SHAPES_SECRET])), *extra]
        raw = request("POST", path_of(SHAPES), headers, body, framing=framing)
        return Case(family, raw, verified=True)

    # Families -----------------------------------------------------------------------------

    def headers(self) -> Case:
        """Odd, many, duplicated, oversized or malformed headers around a guarded event whose
        signature does not verify (another app's secret)."""
        body = json.dumps(self.event()).encode()
        signature = self.signature(body, [OTHER_SECRET])
        rng = self.rng
        choice = rng.randrange(12)
        headers: list[Header] = [("Stripe-Signature", signature)]
        if choice == 0:
            headers += [
                (f"X-H{i}", self.text(rng.randrange(1, 40))) for i in range(rng.randrange(200))
            ]
        elif choice == 1:
            headers.append(("X-Big", "a" * rng.choice([4000, 30000, 33000, 70000])))
        elif choice == 2:
            headers += [("Stripe-Signature", self.signature(body, [OTHER_SECRET]))] * rng.randrange(
                2, 6
            )
        elif choice == 3:
            headers.append(("Content-Type", self.text(rng.randrange(0, 200))))
        elif choice == 4:
            headers.append((self.text(rng.randrange(1, 20)), "v"))  # names with separators
        elif choice == 5:
            headers.append(("X-Folded", "first\r\n  continued"))
        elif choice == 6:
            headers.append(("X-Nul", "a\x00b"))
        elif choice == 7:
            headers.append(("Expect", "100-continue"))
        elif choice == 8:
            headers.append(("Content-Length", str(len(body) + rng.choice([-1, 1, 10]))))
        elif choice == 9:
            headers += [
                ("Upgrade", rng.choice(["websocket", "h2c", "tls/1.2"])),
                ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZQ=="),
            ]
        elif choice == 10:
            headers.append(("Authorization", "Bearer " + self.text(30)))
        else:
            headers.append(("X-Latin", "\u00e9\u00ff" * rng.randrange(1, 100)))
        raw = request("POST", path_of(GUARDED), headers, body)
        return Case("headers", raw, verified=False)

    def signatures(self) -> Case:
        """Mutated `Stripe-Signature` headers: most break the proof (guarded), a few keep a
        valid `v1` among junk (open)."""
        rng = self.rng
        if rng.random() < 0.15:
            body = json.dumps(self.event(self.open_subscription(), "active")).encode()
            valid = self.signature(body, [SHAPES_SECRET])
            stamp, v1 = valid.split(",", 1)
            junk = [f"v1={self.junk(32).hex()}" for _ in range(rng.randrange(0, 20))]
            junk += [f"v0={self.junk(32).hex()}", "x=y", "", " "]
            rng.shuffle(junk)
            header = ",".join([stamp, *junk[:10], " " + v1 + " "])
            raw = request("POST", path_of(SHAPES), [("Stripe-Signature", header)], body)
            return Case("signatures", raw, verified=True)
        body = json.dumps(self.event()).encode()
        valid = self.signature(body, [GUARDED_SECRET])
        stamp, v1 = valid.split(",", 1)
        digest = v1.removeprefix("v1=")
        choice = rng.randrange(14)
        if choice == 0:
            at = rng.randrange(len(digest))
            flipped = digest[:at] + ("0" if digest[at] != "0" else "1") + digest[at + 1 :]
            header = f"{stamp},v1={flipped}"
        elif choice == 1:
            header = f"{stamp},v1={digest[: rng.randrange(len(digest))]}"
        elif choice == 2:
            header = f"{stamp},v1={digest.upper()}"
        elif choice == 3:
            header = f"{stamp},v0={digest},v2={digest}"
        elif choice == 4:
            header = f"{stamp},{stamp},v1={digest}"
        elif choice == 5:
            header = ""
        elif choice == 6:
            header = self.text(rng.randrange(1, 300))
        elif choice == 7:
            header = self.signature(body, [OTHER_SECRET])
        elif choice == 8:
            header = ",".join([stamp] + [f"v1={self.junk(32).hex()}"] * rng.randrange(33, 200))
        elif choice == 9:
            header = f"{stamp},v1={base64.b64encode(bytes.fromhex(digest)).decode()}"
        elif choice == 10:
            header = f"{stamp};v1={digest}"
        elif choice == 11:
            header = f"{stamp},v1={digest}" + ",v1=" + "a" * 9000
        elif choice == 12:
            # A genuine signature of another body: the body was changed after signing.
            other = json.dumps(self.event()).encode()
            header = self.signature(other, [GUARDED_SECRET])
        else:
            header = f"t={self.now()},v1=" + "\u0660" * 64
        headers = [("Stripe-Signature", header)] if rng.random() > 0.05 else []
        return self.unverified_post("signatures", headers, body)

    def timestamps(self) -> Case:
        """A true HMAC of the body under the stated `t`, with `t` outside the tolerance or not
        a plain number of seconds."""
        body = json.dumps(self.event()).encode()
        now = self.now()
        rng = self.rng
        stamp = rng.choice(
            [
                str(now - TOLERANCE - rng.randrange(1, 10**7)),
                str(now + TOLERANCE + rng.randrange(1, 10**7)),
                "0",
                "-" + str(now),
                str(now) + ".5",
                "0" + str(now),
                f"{now:e}",
                hex(now),
                "9" * rng.randrange(12, 40),
                "\u0661\u0667\u0660\u0660",
                "",
                " " + str(now - 10**6),
            ]
        )
        # The signer's own HMAC of `<t>.<body>` with `t` exactly as written.
        key = GUARDED_SECRET.encode()
        digest = hmac.new(key, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
        return self.unverified_post(
            "timestamps", [("Stripe-Signature", f"t={stamp},v1={digest}")], body
        )

    def bodies(self) -> Case:
        """Bodies that are not an event: random bytes, truncated or damaged JSON, odd
        encodings; signed for real (open) or for another body (guarded)."""
        rng = self.rng
        event = json.dumps(self.event(self.open_subscription(), "active")).encode()
        choice = rng.randrange(9)
        if choice == 0:
            body = self.junk(rng.randrange(0, 4096))
        elif choice == 1:
            body = event[: rng.randrange(len(event))]
        elif choice == 2:
            at = rng.randrange(len(event))
            body = event[:at] + self.junk(1) + event[at + 1 :]
        elif choice == 3:
            body = b"\xef\xbb\xbf" + event
        elif choice == 4:
            body = event.decode().encode("utf-16")
        elif choice == 5:
            body = event + b"\x00" * rng.randrange(1, 100)
        elif choice == 6:
            body = b" " * rng.randrange(0, 1000)
        elif choice == 7:
            body = event.replace(b'"', b"'")
        else:
            body = b"\xc0\xaf\xed\xa0\x80" + event  # overlong and surrogate UTF-8
        if rng.random() < 0.5:
            return self.verified_post("bodies", body)
        # A genuine signature, of another body.
        header = self.signature(json.dumps(self.event()).encode(), [GUARDED_SECRET])
        return self.unverified_post("bodies", [("Stripe-Signature", header)], body)

    def json_value(self, depth: int = 0) -> Any:
        """A random JSON value: every type, odd numbers and strings, some nesting."""
        rng = self.rng
        kind = rng.randrange(10 if depth < 4 else 7)
        if kind == 0:
            return None
        if kind == 1:
            return rng.choice([True, False])
        if kind == 2:
            return rng.choice([0, -1, 2**31, 2**63, -(2**63) - 1, 2**40, 2**40 - 1, 10**30])
        if kind == 3:
            return rng.choice([0.5, -0.0, 1e308, 1.7e-308, float(self.now())])
        if kind in (4, 5):
            return self.text(rng.choice([0, 1, 8, 255, 256, 1000]))
        if kind == 6:
            return rng.choice(["\ud800", "a\udfffb", "\u0000", "sub_\u202e", "evt_" + "x" * 255])
        if kind == 7:
            return [self.json_value(depth + 1) for _ in range(rng.randrange(4))]
        return {self.text(rng.randrange(1, 12)): self.json_value(depth + 1) for _ in range(4)}

    def json_shapes(self) -> Case:
        """Verified events whose shape is wrong somewhere: a field replaced by any JSON value,
        removed, or the whole body any JSON value; deep nesting; huge numbers; other types."""
        rng = self.rng
        event = self.event(self.open_subscription(), rng.choice(["active", "past_due", "x"]))
        choice = rng.randrange(6)
        if choice == 0:
            text = json.dumps(self.json_value())
        elif choice == 1:
            depth = rng.choice([100, 1000, 100_000])
            text = "[" * depth + "]" * depth
        elif choice == 2:
            text = json.dumps(event).replace(
                str(event["created"]), "1" + "0" * rng.choice([20, 5000]), 1
            )
        else:
            paths = [
                ("id",), ("type",), ("created",), ("data",), ("data", "object"),
                ("data", "object", "id"), ("data", "object", "status"),
                ("data", "object", "customer"), ("data", "object", "items"),
                ("data", "object", "items", "data"), ("data", "object", "cancel_at_period_end"),
                ("data", "object", "canceled_at"), ("data", "object", "trial_end"),
                ("data", "object", "items", "data", 0),
                ("data", "object", "items", "data", 0, "price"),
                ("data", "object", "items", "data", 0, "price", "product"),
                ("data", "object", "items", "data", 0, "current_period_end"),
                ("livemode",),
            ]  # fmt: skip
            for _ in range(rng.randrange(1, 4)):
                path = rng.choice(paths)
                target: Any = event
                for key in path[:-1]:
                    try:
                        target = target[key]
                    except (KeyError, IndexError, TypeError):
                        target = None
                        break
                if isinstance(target, dict) and rng.random() < 0.2:
                    target.pop(path[-1], None)
                elif isinstance(target, dict | list):
                    with contextlib.suppress(IndexError, TypeError):
                        target[path[-1]] = self.json_value()
            if rng.random() < 0.3:
                event["type"] = rng.choice(
                    [
                        "customer.subscription.deleted",
                        "invoice.paid",
                        "",
                        "CUSTOMER.SUBSCRIPTION.UPDATED",
                    ]
                )
            text = json.dumps(event, allow_nan=True)
        return self.verified_post("json shapes", text.encode("utf-8", "surrogatepass"))

    def sizes(self) -> Case:
        """Bodies at and around the 1 MiB limit, empty bodies, and Content-Lengths that lie
        (longer than the body stalls until the client timeout)."""
        rng = self.rng
        choice = rng.randrange(6)
        if choice == 0:
            event = self.event(self.open_subscription(), "active")
            event["data"]["object"]["metadata"] = {"pad": "x" * (MAX_BODY - 2000)}
            return self.verified_post("sizes", json.dumps(event).encode())
        if choice == 1:
            body = b"x" * (MAX_BODY + rng.choice([1, 100, 10_000]))
            return self.verified_post("sizes", body, framing=rng.choice(["length", "chunked"]))
        if choice == 2:
            return self.verified_post("sizes", b"")
        if choice == 3:
            body = json.dumps(self.event()).encode()
            headers = [("Stripe-Signature", self.signature(body, [OTHER_SECRET]))]
            raw = request(
                "POST",
                path_of(GUARDED),
                [*headers, ("Content-Length", str(len(body) + 50))],
                body,
                framing="none",
            )
            return Case("sizes", raw, verified=False, stalls=True)
        if choice == 4:
            raw = request(
                "POST", path_of(GUARDED), [("Content-Length", str(10**12))], b"", framing="none"
            )
            return Case("sizes", raw + b"x" * 1000, verified=False, stalls=True)
        raw = request(
            "POST",
            path_of(GUARDED),
            [("Content-Length", str(rng.choice([-1, 0x7FFFFFFFFFFFFFFF + 1])))],
            b"",
            framing="none",
        )
        return Case("sizes", raw, verified=False)

    def encodings(self) -> Case:
        """Content and transfer encodings: compressed bodies (signed as sent, or as they were
        before compression), chunking with odd chunk sizes and extensions, broken chunking,
        both framings at once."""
        rng = self.rng
        event = json.dumps(self.event(self.open_subscription(), "active")).encode()
        choice = rng.randrange(7)
        if choice == 0:
            coding, packed = rng.choice(
                [("gzip", gzip.compress(event)), ("deflate", zlib.compress(event)), ("br", event)]
            )
            return self.verified_post("encodings", packed, [("Content-Encoding", coding)])
        if choice == 1:
            packed = gzip.compress(json.dumps(self.event()).encode())
            original = json.dumps(self.event()).encode()
            headers = [
                ("Stripe-Signature", self.signature(original, [GUARDED_SECRET])),
                ("Content-Encoding", "gzip"),
            ]
            return self.unverified_post("encodings", headers, packed)
        if choice == 2:
            sizes = [rng.randrange(1, 50) for _ in range(rng.randrange(1, 30))]
            headers = [("Stripe-Signature", self.signature(event, [SHAPES_SECRET]))]
            head = request("POST", path_of(SHAPES), headers, b"", framing="none")
            head = head.replace(
                b"Connection: close", b"Transfer-Encoding: chunked\r\nConnection: close"
            )
            return Case("encodings", head + chunked(event, sizes), verified=True)
        if choice == 3:
            headers = [("Stripe-Signature", self.signature(event, [SHAPES_SECRET]))]
            head = request("POST", path_of(SHAPES), headers, b"", framing="none")
            head = head.replace(
                b"Connection: close", b"Transfer-Encoding: chunked\r\nConnection: close"
            )
            broken = rng.choice(
                [
                    b"zz\r\n" + event,
                    b"ffffffffffffffff\r\n" + event,
                    f"{len(event)};ext=1\r\n".encode() + event + b"\r\n0\r\n\r\n",
                    b"5\r\nab",
                ]
            )
            return Case("encodings", head + broken, verified=False, stalls=broken == b"5\r\nab")
        if choice == 4:
            body = json.dumps(self.event()).encode()
            headers = [
                ("Stripe-Signature", self.signature(body, [OTHER_SECRET])),
                ("Transfer-Encoding", "chunked"),
            ]
            raw = request("POST", path_of(GUARDED), headers, body)  # both framings: smuggling
            return Case("encodings", raw, verified=False)
        if choice == 5:
            te = rng.choice(
                ["gzip, chunked", "chunked, gzip", "xchunked", "chunked\x00", "identity"]
            )
            body = json.dumps(self.event()).encode()
            headers = [
                ("Stripe-Signature", self.signature(body, [OTHER_SECRET])),
                ("Transfer-Encoding", te),
            ]
            return self.unverified_post("encodings", headers, body)
        charset = rng.choice(["utf-16", "latin-1", "koi8-r", "x" * 300, ""])
        return self.verified_post(
            "encodings", event, [("Content-Type", f"application/json; charset={charset}")]
        )

    def paths(self) -> Case:
        """Traversals, encodings and odd request targets, with a guarded event whose
        signature does not verify."""
        rng = self.rng
        body = json.dumps(self.event()).encode()
        headers = [("Stripe-Signature", self.signature(body, [OTHER_SECRET]))]
        segments = [
            "..",
            ".",
            "%2e%2e",
            "..%2f..",
            "%2F",
            "%00",
            "%ff",
            "%c0%ae",
            "billing",
            "guarded",
            "shapes",
            "",
            "~",
            "%",
            "%%",
            "\u00e9",
            ";x=1",
        ]
        target = rng.choice(
            [
                "/webhooks/" + "/".join(rng.choice(segments) for _ in range(rng.randrange(0, 6))),
                "/webhooks/billing/guarded?" + self.text(rng.randrange(0, 100)),
                "/webhooks/billing/guarded#frag",
                "//webhooks//billing//guarded",
                "http://evil.example/webhooks/billing/guarded",
                "*",
                "evil.example:443",
                "/" + "a" * rng.choice([100, 5000, 40_000]),
                "/readyz/webhooks/../../etc/passwd",
                "/webhooks/billing/guarded/",
                "/WEBHOOKS/billing/guarded",
                "/openapi.json",
                "/metrics",
                "",
            ]
        )
        raw = request("POST", target.replace(" ", "%20") or "/", headers, body)
        return Case("paths", raw, verified=False)

    def methods(self) -> Case:
        """Every method and some that do not exist, lower case, HTTP/1.0, /0.9 and /2 forms."""
        rng = self.rng
        body = json.dumps(self.event()).encode()
        headers = [("Stripe-Signature", self.signature(body, [OTHER_SECRET]))]
        choice = rng.randrange(5)
        if choice == 0:
            method = rng.choice(
                [
                    "GET",
                    "HEAD",
                    "PUT",
                    "DELETE",
                    "PATCH",
                    "OPTIONS",
                    "TRACE",
                    "CONNECT",
                    "PROPFIND",
                    "MKCOL",
                ]
            )
            return Case("methods", request(method, path_of(GUARDED), headers, body), verified=False)
        if choice == 1:
            method = rng.choice(
                ["post", "Post", "BREW", "FOO-BAR", "P O S T", "POST\x00", "\u00c9"]
            )
            return Case("methods", request(method, path_of(GUARDED), headers, body), verified=False)
        if choice == 2:
            version = rng.choice(
                [
                    "HTTP/1.0",
                    "HTTP/0.9",
                    "HTTP/2.0",
                    "HTTP/1.2",
                    "HTTP/9.9",
                    "http/1.1",
                    "HTTP/1.1x",
                ]
            )
            return Case(
                "methods",
                request("POST", path_of(GUARDED), headers, body, version=version),
                verified=False,
            )
        if choice == 3:
            return Case(
                "methods", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + self.junk(64), verified=False
            )
        return Case(
            "methods", b"POST " + path_of(GUARDED).encode() + b"\r\n\r\n" + body, verified=False
        )

    def app_api(self) -> Case:
        """The app-facing API: wrong, absent, other apps' or malformed keys (guarded: no
        receipt may be registered), and the open app's key with hostile bodies (verified)."""
        rng = self.rng
        if rng.random() < 0.3:
            body = rng.choice(
                [
                    json.dumps(
                        {
                            "app_user_id": self.text(rng.randrange(0, 300)),
                            "fetch_token": "sub_" + self.text(rng.randrange(0, 300)),
                        }
                    ),
                    json.dumps(self.json_value()),
                    '{"app_user_id": "u\\ud800", "fetch_token": "sub_x"}',
                    "x" * rng.choice([100, 17 * 1024]),
                ]
            ).encode("utf-8", "surrogatepass")
            raw = request("POST", "/v1/receipts", [("Authorization", f"Bearer {SHAPES_KEY}")], body)
            return Case("app API", raw, verified=True)
        auth = rng.choice(
            [
                [],
                [("Authorization", "Bearer")],
                [("Authorization", "Bearer " + GUARDED_KEY[:-1])],
                [("Authorization", "Bearer " + GUARDED_KEY + "x")],
                [("Authorization", "Basic " + base64.b64encode(GUARDED_KEY.encode()).decode())],
                [("Authorization", "Bearer " + hashlib.sha256(GUARDED_KEY.encode()).hexdigest())],
                [("Authorization", "bearer  " + self.text(40))],
                [("Authorization", "Bearer " + GUARDED_SECRET)],
            ]
        )
        if rng.random() < 0.5:
            body = json.dumps({"app_user_id": "mallory", "fetch_token": "sub_mallory"}).encode()
            return Case("app API", request("POST", "/v1/receipts", auth, body), verified=False)
        user = rng.choice(["alice", "mallory", "..%2f..", "x" * 300, "%00", self.text(20)])
        target = "/v1/subscribers/" + user.replace(" ", "%20")
        return Case("app API", request("GET", target, auth, framing="none"), verified=False)


def send(port: int, case: Case, timeout: float) -> Answer:
    """Send `case` on a fresh connection and read the answer until the server closes or
    `timeout` passes (a hang)."""
    started = time.monotonic()
    received = b""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        # The server may answer before reading everything, and close.
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(case.raw)
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                received += chunk
                if time.monotonic() - started > timeout:
                    raise TimeoutError
        except TimeoutError:
            return Answer(*_final(received), time.monotonic() - started, hung=True)
        except ConnectionResetError:
            pass
    return Answer(*_final(received), time.monotonic() - started, hung=False)


def _final(received: bytes) -> tuple[int | None, bytes]:
    """The status and body of the last answer that is not an interim 1xx."""
    final = [(status, body) for status, body in answers_of(received) if status >= 200]
    return final[-1] if final else (None, b"")


def answers_of(received: bytes) -> list[tuple[int, bytes]]:
    """Split everything a server sent into (status, body) answers (a 100 Continue is an
    answer without a body)."""
    found: list[tuple[int, bytes]] = []
    rest = received
    while rest.startswith(b"HTTP/"):
        head, _, rest = rest.partition(b"\r\n\r\n")
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            break
        status = int(parts[1])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value.strip())
        found.append((status, rest[:length]))
        rest = rest[length:]
    return found
