"""The operator's settings: command-line flags, each also an environment variable.

Every flag `--some-flag` can be given as `STRIPE_WEBHOOK_OPERATOR_SOME_FLAG`; the flag wins.
The receiver's namespace and Secret name also read the receiver's own variables
(`STRIPE_WEBHOOK_RECEIVER_NAMESPACE`, `STRIPE_WEBHOOK_RECEIVER_SECRET_NAME`), so one Helm value
feeds both programs.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from stripe_webhook_operator.exceptions import ConfigurationError
from stripe_webhook_operator.times import parse_duration

ENV_PREFIX: Final = "STRIPE_WEBHOOK_OPERATOR_"
DEFAULT_STRIPE_API_BASE: Final = "https://api.stripe.com"
DEFAULT_STRIPE_API_VERSION: Final = "2026-10-28.endive"
DEFAULT_RECEIVER_SECRET_NAME: Final = "stripe-webhook-receiver-secrets"
DEFAULT_OVERLAP_SECONDS: Final = 24 * 3600.0
# `--max-passes auto`: this many passes per Stripe request a second. A new webhook's pass makes
# three Stripe calls and waits for the limiter between them, so three per request a second
# keep the limiter busy with room to spare; more would only wait, each with its bodies.
PASSES_PER_STRIPE_RATE: Final = 3.0


@dataclass(frozen=True)
class Settings:
    """Everything the operator is told at start; read once, passed explicitly."""

    stripe_api_base: str = DEFAULT_STRIPE_API_BASE
    receiver_url: str | None = None
    receiver_service: tuple[str, str] | None = None
    public_base_url: str | None = None
    receiver_namespace: str = "default"
    receiver_secret_name: str = DEFAULT_RECEIVER_SECRET_NAME
    cluster_id: str | None = None
    namespaces: tuple[str, ...] = ()
    peering: str | None = None
    priority: int | None = None
    peering_lifetime: float = 60.0
    metrics_host: str = "0.0.0.0"  # noqa: S104 - the pod's probe and scrape arrive from outside
    metrics_port: int = 8080
    drift_interval: float = 300.0
    drift_jitter: float = 30.0
    propagation_interval: float = 0.5
    stripe_rate: float = 20.0
    stripe_burst: int = 10
    # Reconcile passes doing work at once, across every webhook (None: derived, see below).
    max_passes: int | None = None
    stripe_max_retries: int = 5
    stripe_timeout: float = 30.0
    watch_server_timeout: float = 60.0
    watch_client_timeout: float = 90.0
    log_level: str = "INFO"
    orphan_sweep: bool = True
    receiver_pod_nudge: bool = True
    recovery: bool = True
    recovery_interval: float = 300.0
    recovery_retry: float = 30.0
    recovery_lanes: int = 8
    event_retention: float = 30 * 86400.0

    @property
    def clusterwide(self) -> bool:
        """Whether the operator watches every namespace (no `--namespace` given)."""
        return not self.namespaces

    @property
    def recovers(self) -> bool:
        """Whether gaps are recorded and recovered: on, with a receiver to deliver to."""
        return self.recovery and self.receiver_url is not None

    @property
    def pass_limit(self) -> int:
        """How many reconcile passes may do work at once; the others wait for a turn."""
        if self.max_passes is not None:
            return self.max_passes
        return max(math.ceil(PASSES_PER_STRIPE_RATE * self.stripe_rate), self.stripe_burst)

    @property
    def handshake_configured(self) -> bool:
        """Whether the readiness handshake with the receiver is on."""
        return self.receiver_url is not None


def _env(environ: Mapping[str, str], flag: str) -> str | None:
    return environ.get(ENV_PREFIX + flag.upper().replace("-", "_"))


def build_parser(environ: Mapping[str, str]) -> argparse.ArgumentParser:
    """Return the argument parser; defaults come from `environ` so the flag always wins."""
    parser = argparse.ArgumentParser(
        prog="stripe-webhook-operator",
        description="Keep Stripe webhook endpoints and their signing-secret Secrets in line "
        "with StripeWebhook resources.",
    )

    def add(flag: str, default: str | None, help_text: str, **extra: object) -> None:
        parser.add_argument(
            f"--{flag}",
            default=_env(environ, flag) if _env(environ, flag) is not None else default,
            help=f"{help_text} (env {ENV_PREFIX}{flag.upper().replace('-', '_')})",
            **extra,  # type: ignore[arg-type]
        )

    add("receiver-url", None, "base URL of the receiver for the readiness handshake")
    add(
        "receiver-service",
        None,
        "NAMESPACE/NAME of the receiver Service: every ready address of its EndpointSlices "
        "must confirm a new secret",
    )
    add("public-base-url", None, "base URL of default endpoint URLs (+ /webhooks/NS/NAME)")
    add(
        "receiver-namespace",
        environ.get("STRIPE_WEBHOOK_RECEIVER_NAMESPACE", environ.get("POD_NAMESPACE", "default")),
        "namespace of the receiver's aggregated Secret",
    )
    add(
        "receiver-secret-name",
        environ.get("STRIPE_WEBHOOK_RECEIVER_SECRET_NAME", DEFAULT_RECEIVER_SECRET_NAME),
        "name of the receiver's aggregated Secret",
    )
    add(
        "cluster-id", None, "id tagged on endpoints for the orphan sweep (default: kube-system uid)"
    )
    add(
        "namespace",
        None,
        "watch only these namespaces (comma-separated or repeated); default: all",
        action="append",
    )
    add("peering", None, "kopf peering name: replicas with the same name share the work")
    add("priority", None, "peering priority (default: random, distinct per replica)")
    add("peering-lifetime", "60s", "how long a silent replica is trusted before others take over")
    add("metrics-host", "0.0.0.0", "address of the /metrics and /healthz server")  # noqa: S104
    add("metrics-port", "8080", "port of the /metrics and /healthz server")
    add("drift-interval", "5m", "how often each webhook is compared with Stripe")
    add("drift-jitter", "30s", "random delay before a webhook's first drift check")
    add("propagation-interval", "500ms", "how often the receiver is asked for a new secret")
    add("stripe-rate", "20", "Stripe requests per second, across every webhook and account")
    add("stripe-burst", "10", "Stripe requests allowed at once above the rate")
    add(
        "max-passes",
        "auto",
        "reconcile passes doing work at once, across every webhook; the others wait for a "
        "turn holding nothing (auto: 3 x --stripe-rate, at least --stripe-burst)",
    )
    add("stripe-max-retries", "5", "retries of a Stripe call after a 429, 5xx or network error")
    add("stripe-timeout", "30s", "timeout of one Stripe request")
    add("watch-server-timeout", "60s", "server-side timeout of each Kubernetes watch")
    add("watch-client-timeout", "90s", "client-side timeout of each Kubernetes watch")
    add("log-level", "INFO", "DEBUG, INFO, WARNING or ERROR")
    add("orphan-sweep", "true", "delete endpoints tagged with this cluster whose resource is gone")
    add(
        "receiver-pod-nudge",
        "true",
        "annotate the receiver Service's Pods after each write of their Secret, so that the "
        "kubelet remounts it at once (needs `--receiver-service`)",
    )
    add(
        "recovery",
        "true",
        "record the gaps in each webhook's deliveries and redeliver their events from Stripe's "
        "Events API (needs `--receiver-url`)",
    )
    add(
        "recovery-interval",
        "5m",
        "how often each Stripe account is scanned for failed deliveries and its gaps recovered",
    )
    add("recovery-retry", "30s", "first wait before redelivering a gap again (doubles, 1h at most)")
    add(
        "recovery-lanes",
        "8",
        "redeliveries in flight at once per webhook (one subscription's events stay in one lane, "
        "in order)",
    )
    add(
        "event-retention",
        "720h",
        "how far back Stripe keeps events: older gaps are reported as beyond retention",
    )
    return parser


def _duration(flag: str, text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise ConfigurationError(f"`--{flag}`: {exc}") from exc


def _number(flag: str, text: str, kind: type[int] | type[float]) -> float:
    try:
        value = kind(text)
    except ValueError as exc:
        raise ConfigurationError(f"`--{flag}` must be a number, not '{text}'.") from exc
    if value < 0:
        raise ConfigurationError(f"`--{flag}` must not be negative.")
    return value


def _max_passes(text: str) -> int | None:
    if str(text).strip().lower() == "auto":
        return None
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigurationError(
            f"`--max-passes` must be a whole number of at least 1 or 'auto', not '{text}'."
        )
    return value


def _service(text: str | None) -> tuple[str, str] | None:
    if not text:
        return None
    namespace, _, name = text.partition("/")
    if not namespace or not name:
        raise ConfigurationError(
            f"`--receiver-service` must be NAMESPACE/NAME, not '{text}'; write e.g. "
            "'stripe-system/stripe-webhook-receiver'."
        )
    return namespace, name


def _namespaces(values: Sequence[str] | str | None) -> tuple[str, ...]:
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    return tuple(sorted({ns.strip() for item in items for ns in item.split(",") if ns.strip()}))


def parse_settings(argv: Sequence[str], environ: Mapping[str, str] | None = None) -> Settings:
    """Return the Settings named by `argv` and `environ`, or raise ConfigurationError."""
    env = os.environ if environ is None else environ
    args = build_parser(env).parse_args(list(argv))
    level = str(args.log_level).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise ConfigurationError(
            f"`--log-level` must be DEBUG, INFO, WARNING or ERROR, not '{level}'."
        )
    if args.receiver_service and not args.receiver_url:
        raise ConfigurationError(
            "`--receiver-service` needs `--receiver-url` too: the scheme and path of the "
            "handshake come from it."
        )
    return Settings(
        stripe_api_base=env.get("STRIPE_API_BASE", DEFAULT_STRIPE_API_BASE).rstrip("/"),
        receiver_url=args.receiver_url.rstrip("/") if args.receiver_url else None,
        receiver_service=_service(args.receiver_service),
        public_base_url=args.public_base_url.rstrip("/") if args.public_base_url else None,
        receiver_namespace=args.receiver_namespace,
        receiver_secret_name=args.receiver_secret_name,
        cluster_id=args.cluster_id or None,
        namespaces=_namespaces(args.namespace),
        peering=args.peering or None,
        priority=int(_number("priority", args.priority, int)) if args.priority else None,
        peering_lifetime=max(_duration("peering-lifetime", args.peering_lifetime), 2.0),
        metrics_host=args.metrics_host,
        metrics_port=int(_number("metrics-port", args.metrics_port, int)),
        drift_interval=max(_duration("drift-interval", args.drift_interval), 0.5),
        drift_jitter=_duration("drift-jitter", args.drift_jitter),
        propagation_interval=max(_duration("propagation-interval", args.propagation_interval), 0.1),
        stripe_rate=max(_number("stripe-rate", args.stripe_rate, float), 0.1),
        stripe_burst=max(int(_number("stripe-burst", args.stripe_burst, int)), 1),
        max_passes=_max_passes(args.max_passes),
        stripe_max_retries=int(_number("stripe-max-retries", args.stripe_max_retries, int)),
        stripe_timeout=_duration("stripe-timeout", args.stripe_timeout),
        watch_server_timeout=_duration("watch-server-timeout", args.watch_server_timeout),
        watch_client_timeout=_duration("watch-client-timeout", args.watch_client_timeout),
        log_level=level,
        orphan_sweep=str(args.orphan_sweep).lower() in {"1", "true", "yes", "on"},
        receiver_pod_nudge=str(args.receiver_pod_nudge).lower() in {"1", "true", "yes", "on"},
        recovery=str(args.recovery).lower() in {"1", "true", "yes", "on"},
        recovery_interval=max(_duration("recovery-interval", args.recovery_interval), 0.5),
        recovery_retry=max(_duration("recovery-retry", args.recovery_retry), 0.1),
        recovery_lanes=max(int(_number("recovery-lanes", args.recovery_lanes, int)), 1),
        event_retention=max(_duration("event-retention", args.event_retention), 1.0),
    )
