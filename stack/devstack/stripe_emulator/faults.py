"""Injected failures for `/v1` requests, set through `/_emulator/faults`.

A fault matches requests by account (optional), method (optional) and path prefix, and serves
`count` of them (or all, with `count` null). It can delay the request (`latency`), answer for
it with a status (429 with or without `Stripe-Should-Retry`, 500, 503) in Stripe's error
shape, or drop the TCP connection before the request runs (`drop: "before"`) or after it ran
and its answer is lost (`drop: "after"`, the case idempotency keys exist for). With
`answer_latency` the request runs at once and its answer waits: a window in which to kill a
client that has changed Stripe's state but not yet heard of it. With `work_latency` the request
itself takes that long: its Idempotency-Key is in use meanwhile, and another request with that
key is answered 409 `idempotency_key_in_use`, as Stripe does.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from devstack.stripe_emulator.accounts import new_id
from devstack.stripe_emulator.errors import StripeError

_KINDS = {
    429: ("invalid_request_error", "rate_limit", "Request rate limit exceeded (injected fault)."),
    500: ("api_error", None, "An unknown error occurred (injected fault)."),
    502: ("api_error", None, "Bad gateway (injected fault)."),
    503: ("api_error", None, "Stripe is temporarily unavailable (injected fault)."),
    504: ("api_error", None, "Gateway timeout (injected fault)."),
}
DROPS = ("before", "after")


@dataclass
class Fault:
    """One injected failure rule."""

    id: str
    path_prefix: str
    method: str | None
    account: str | None
    status: int | None
    should_retry: bool | None
    latency: float
    answer_latency: float
    work_latency: float
    drop: str | None
    remaining: int | None
    served: int = 0

    def matches(self, account_id: str | None, method: str, path: str) -> bool:
        return (
            (self.remaining is None or self.remaining > 0)
            and path.startswith(self.path_prefix)
            and (self.method is None or self.method == method)
            and (self.account is None or self.account == account_id)
        )

    def error(self) -> StripeError | None:
        """The error answer this fault gives, if it gives one."""
        if self.status is None:
            return None
        kind, code, message = _KINDS[self.status]
        headers = {}
        if self.should_retry is not None:
            headers["Stripe-Should-Retry"] = "true" if self.should_retry else "false"
        return StripeError(self.status, kind, message, code=code, headers=headers)


def parse_fault(spec: dict[str, Any]) -> Fault:
    """Build a fault from the JSON body of `POST /_emulator/faults`, or raise ValueError."""
    known = {
        "path_prefix",
        "method",
        "account",
        "status",
        "should_retry",
        "latency",
        "answer_latency",
        "work_latency",
        "drop",
        "count",
    }
    unknown = set(spec) - known
    if unknown:
        raise ValueError(f"unknown fault fields {sorted(unknown)}; use {sorted(known)}")
    status = spec.get("status")
    if status is not None and status not in _KINDS:
        raise ValueError(f"`status` must be one of {sorted(_KINDS)}, not {status!r}")
    drop = spec.get("drop")
    if drop is not None and drop not in DROPS:
        raise ValueError(f"`drop` must be one of {DROPS}, not {drop!r}")
    latencies = ("latency", "answer_latency", "work_latency")
    if status is None and drop is None and not any(spec.get(name) for name in latencies):
        raise ValueError(
            "a fault needs `status`, `drop`, `latency`, `answer_latency` or `work_latency`"
        )
    count = spec.get("count", 1)
    method = spec.get("method")
    return Fault(
        id=new_id("fault", 12),
        path_prefix=str(spec.get("path_prefix", "/v1/")),
        method=None if method is None else str(method).upper(),
        account=spec.get("account"),
        status=status,
        should_retry=spec.get("should_retry"),
        latency=float(spec.get("latency") or 0.0),
        answer_latency=float(spec.get("answer_latency") or 0.0),
        work_latency=float(spec.get("work_latency") or 0.0),
        drop=drop,
        remaining=None if count is None else int(count),
    )


class FaultBook:
    """The active faults, first added first served."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        self._faults.append(fault)

    def clear(self, account_id: str | None = None) -> None:
        """Remove every fault, or only those scoped to `account_id`."""
        self._faults = [
            f for f in self._faults if account_id is not None and f.account != account_id
        ]

    def take(self, account_id: str | None, method: str, path: str) -> Fault | None:
        """Return the first fault that matches this request and count it as served."""
        for fault in self._faults:
            if fault.matches(account_id, method, path):
                fault.served += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
                return fault
        return None

    def listing(self) -> list[dict[str, Any]]:
        return [asdict(fault) for fault in self._faults]
