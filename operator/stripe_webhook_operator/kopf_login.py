"""kopf's own connection to the API server: the `kubernetes` client's credentials, in an aiohttp
session whose pool of connections is bounded.

kopf's built-in session has no bound (`TCPConnector(limit=0)`): every request kopf makes at the
same moment opens a TLS connection of its own, and each connection holds asyncio's 128 KiB read
buffer and OpenSSL's buffers for as long as it stays in the pool. With 1,000 StripeWebhooks
applied at once, kopf's finalizer and progress patches opened about 1,800 of them: 232 MiB of
the operator's memory (tracemalloc: `asyncio/sslproto.py`), more than the rest of the operator
together, and as many TLS handshakes for the API server. With a bound, the requests beyond it
wait for a free connection instead.

Watch streams hold a connection for as long as they run, so the bound leaves room for every
stream the operator can open (one per watched resource, and kopf's peering, in each namespace)
above the requests in flight: a stream never waits behind a full pool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiohttp
import kopf

# kopf's requests other than watch streams that run at once; the rest wait for a connection.
REQUESTS_IN_FLIGHT = 32
# What kopf watches in each namespace (or once, cluster-wide): StripeWebhooks, Secrets, and
# the peering object when peering is on.
STREAMS_PER_NAMESPACE = 3


def connection_limit(namespaces: Sequence[str], requests: int = REQUESTS_IN_FLIGHT) -> int:
    """Return how many connections kopf's pool may hold: `requests` beyond its watch streams."""
    return requests + STREAMS_PER_NAMESPACE * max(1, len(namespaces))


def bounded_session(info: kopf.ConnectionInfo, limit: int) -> kopf.AiohttpSession:
    """Return `info`'s server and credentials in a session of at most `limit` connections."""
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=limit, ssl=info.as_ssl_context()),
        headers=info.as_http_headers(),
        proxy=info.proxy_url,
        trust_env=info.trust_env,
    )
    return kopf.AiohttpSession(
        server=info.server,
        default_namespace=info.default_namespace,
        priority=info.priority,
        expiration=info.expiration,
        aiohttp_session=session,
    )


LoginHandler = Callable[..., Awaitable[kopf.AiohttpSession | None]]


def login_handler(namespaces: Sequence[str]) -> LoginHandler:
    """Return a login handler for an operator serving `namespaces` (empty: cluster-wide)."""
    limit = connection_limit(namespaces)

    async def login(**kwargs: Any) -> kopf.AiohttpSession | None:
        """When kopf logs in, take the `kubernetes` client's credentials (in-cluster service
        account, else the kubeconfig), as kopf's default registry would."""
        info = kopf.login_via_client(**kwargs)
        return None if info is None else bounded_session(info, limit)

    return login


def register(registry: kopf.OperatorRegistry, namespaces: Sequence[str]) -> None:
    """Register the bounded login handler in `registry`."""
    kopf.on.login(registry=registry, id="bounded_login")(login_handler(namespaces))
