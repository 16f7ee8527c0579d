"""`stripe-webhook-operator`: run the operator (kopf, programmatically) with its metrics and
health server."""

from __future__ import annotations

import asyncio
import functools
import importlib.util
import logging
import random
import sys
from collections.abc import Awaitable, Callable, Sequence

import httpx
import kopf
from aiohttp import web

from stripe_webhook_operator import constants as c
from stripe_webhook_operator import handlers, kube, metrics
from stripe_webhook_operator.accounts import AccountCache
from stripe_webhook_operator.deletion import sweep_orphans
from stripe_webhook_operator.exceptions import ConfigurationError
from stripe_webhook_operator.health import Answer, Health
from stripe_webhook_operator.limiter import TokenBucket
from stripe_webhook_operator.recovery import Recoveries
from stripe_webhook_operator.runtime import Runtime
from stripe_webhook_operator.settings import Settings, parse_settings
from stripe_webhook_operator.stripe_api import StripeGateway
from stripe_webhook_operator.times import utc_now

logger = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.Response]]

# The operator's own annotations change as it works; they must not count as user changes.
OWN_ANNOTATIONS = (c.ANNOTATION_ENDPOINT_ID, c.ANNOTATION_PENDING_IDEMPOTENCY_KEY)


def kopf_settings(settings: Settings) -> kopf.OperatorSettings:
    """Return kopf's settings: our finalizer and annotation prefix, watch timeouts short
    enough that a silently dead watch stream is replaced, Events from our component, and no
    cluster scanning when restricted to namespaces."""
    ops = kopf.OperatorSettings()
    ops.persistence.finalizer = c.FINALIZER
    ops.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=c.KOPF_STORAGE_PREFIX)
    ops.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=c.KOPF_STORAGE_PREFIX,
        key="last-handled-configuration",
        ignored_fields=[("metadata", "annotations", key) for key in OWN_ANNOTATIONS],
    )
    ops.watching.server_timeout = int(settings.watch_server_timeout)  # the API wants an integer
    ops.watching.client_timeout = settings.watch_client_timeout
    ops.watching.connect_timeout = 10
    ops.posting.level = logging.INFO
    ops.posting.reporting_component = c.LABEL_MANAGED_BY_VALUE
    ops.peering.mandatory = settings.peering is not None
    ops.peering.clusterwide = settings.clusterwide
    # Restricted to named namespaces, kopf would list every namespace of the cluster (to match
    # patterns) and watch CRDs; without scanning it serves exactly those namespaces and needs
    # no cluster-wide grant at all (a new CRD version is then noticed on restart).
    ops.scanning.disabled = not settings.clusterwide
    ops.peering.lifetime = int(settings.peering_lifetime)
    return ops


def peering_priority(settings: Settings) -> int:
    """Return this replica's peering priority: the flag's, else a random one (replicas with
    equal priorities would all freeze)."""
    if settings.priority is not None:
        return settings.priority
    return random.SystemRandom().randint(1, 2**31 - 1)


async def start_health_server(settings: Settings, health: Health) -> web.AppRunner:
    """Serve /metrics and the probes: /livez (liveness), /readyz (readiness) and /healthz
    (started and running), as health.py defines them."""

    def handler(probe: Callable[[], Awaitable[Answer]]) -> Handler:
        async def answer(_request: web.Request) -> web.Response:
            verdict = await probe()
            return web.json_response({"status": verdict.status}, status=200 if verdict.ok else 503)

        return answer

    async def live() -> Answer:
        return health.live()

    async def started() -> Answer:
        return health.started_and_running()

    async def scrape(_request: web.Request) -> web.Response:
        return web.Response(body=metrics.exposition(), content_type="text/plain")

    app = web.Application()
    app.router.add_get("/livez", handler(live))
    app.router.add_get("/readyz", handler(health.ready))
    app.router.add_get("/healthz", handler(started))
    app.router.add_get("/metrics", scrape)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.metrics_host, settings.metrics_port).start()
    return runner


async def serve(settings: Settings) -> None:
    """Run the operator until it is told to stop."""
    kube_client = kube.Kube.from_configuration(kube.load_configuration())
    cluster_id = settings.cluster_id or await kube_client.namespace_uid("kube-system")
    gateway = StripeGateway(
        settings.stripe_api_base,
        TokenBucket(settings.stripe_rate, settings.stripe_burst),
        max_retries=settings.stripe_max_retries,
        timeout=settings.stripe_timeout,
    )
    http = httpx.AsyncClient(timeout=5.0)
    rt = Runtime(settings, kube_client, gateway, http, cluster_id or "default")
    rt.accounts = AccountCache(
        gateway.list_endpoints,
        ttl=settings.drift_interval * 0.8,
        on_refresh=functools.partial(sweep_orphans, rt) if settings.orphan_sweep else None,
    )
    if settings.recovers:
        rt.recovery = Recoveries(rt)
    registry = kopf.OperatorRegistry()
    handlers.register(registry, rt)
    ready = asyncio.Event()
    peering = settings.peering is not None
    task = asyncio.create_task(
        kopf.operator(
            registry=registry,
            settings=kopf_settings(settings),
            clusterwide=settings.clusterwide,
            namespaces=list(settings.namespaces),
            standalone=not peering,
            peering_name=settings.peering,
            priority=peering_priority(settings) if peering else None,
            ready_flag=ready,
        )
    )
    metrics.record_start(utc_now().timestamp(), settings.drift_interval)
    health = Health(ready, task, kube_client.server_version)
    runner = await start_health_server(settings, health)
    logger.info(
        "operator started",
        extra={"cluster_id": rt.cluster_id, "namespaces": list(settings.namespaces) or "all"},
    )
    try:
        await task
    finally:
        await runner.cleanup()
        if rt.recovery is not None:
            await rt.recovery.stop()
        await http.aclose()
        await gateway.aclose()
        await kube_client.close()


def skip_sniffio_lookups() -> None:
    """Make httpcore's per-request `import sniffio` fail at once when sniffio is absent.

    httpcore tries that import each time it sets up a lock or an event; without the package,
    every try searched the whole `sys.path` again (a failed import is not remembered), which
    took a fifth of the operator's CPU with a hundred webhooks. A None entry in `sys.modules`
    makes the import fail without a search; httpcore then assumes asyncio, as it would."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point of the `stripe-webhook-operator` console script."""
    skip_sniffio_lookups()
    try:
        settings = parse_settings(sys.argv[1:] if argv is None else argv)
    except ConfigurationError as exc:
        print(f"stripe-webhook-operator: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    kopf.configure(
        debug=settings.log_level == "DEBUG",
        quiet=settings.log_level in {"WARNING", "ERROR"},
        log_format=kopf.LogFormat.JSON,
    )
    # httpx logs every request URL at INFO; Stripe and API-server URLs hold no secret, but
    # they drown the operator's own lines.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("stripe").setLevel(logging.WARNING)
    asyncio.run(serve(settings))
