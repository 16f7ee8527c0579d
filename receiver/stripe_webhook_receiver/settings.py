"""The receiver's settings, as the command line and the environment give them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_SECRETS_DIR = Path("/etc/stripe-webhooks")
DEFAULT_DATABASE_URL = "sqlite:////var/lib/stripe-webhook-receiver/receiver.db"
DEFAULT_HOST = "0.0.0.0"  # noqa: S104 - a server in a pod listens on the pod's addresses
DEFAULT_PORT = 8000
DEFAULT_TOLERANCE = 300
DEFAULT_RETENTION = 30 * 24 * 3600
MAX_BODY_BYTES = 1024 * 1024
# Connection limits, chosen so that the worst case fits the chart's 256 MiB memory limit: an
# idle connection costs the receiver about 5 KB, one with a request in flight about 8 KB, one
# whose head is still arriving up to about 24 KiB (its bytes and up to 100 parsed headers), so
# 2048 of them take at most ~48 MiB, beside the 64 MiB body budget and ~50 MiB of process.
DEFAULT_MAX_CONNECTIONS = 2048
# Stripe's request line and headers are well under 4 KiB (a `Stripe-Signature` carries one
# 64-digit `v1` per live secret); 16 KiB (Node.js's default) leaves room for proxies' headers.
DEFAULT_MAX_HEADER_BYTES = 16 * 1024
DEFAULT_CLIENT_TIMEOUT = 10
DEFAULT_KEEP_ALIVE_TIMEOUT = 5
# Bytes of bodies still arriving that all requests together may hold (a quarter of the
# chart's memory limit); a body that arrived whole in one read costs nothing from it.
DEFAULT_MAX_PENDING_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Settings:
    """Everything the receiver needs to run; `create_app` takes one of these."""

    secrets_dir: Path = DEFAULT_SECRETS_DIR
    database_url: str = DEFAULT_DATABASE_URL
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    # Seconds a signature's timestamp may differ from now, in either direction.
    tolerance: int = DEFAULT_TOLERANCE
    # Seconds delivery records and processed-event ids are kept.
    retention: int = DEFAULT_RETENTION
    log_level: str = "INFO"
    # Seconds between two looks at the secrets directory: a swap is seen well within a second.
    reload_interval: float = 0.25
    # Seconds between two looks at whether the database answers (the `database_up` gauge).
    database_check_interval: float = 5.0
    # Seconds between two retention passes.
    prune_interval: float = 3600.0
    max_body_bytes: int = MAX_BODY_BYTES
    # Open connections at once; one more is answered 503 `overloaded` and closed.
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    # Bytes of a request line and headers; more is answered 431 and the connection closed.
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES
    # Seconds a client may take to send a request's line and headers (from connecting or
    # from the previous answer), to send its body, or to take an answer off the wire.
    client_timeout: float = DEFAULT_CLIENT_TIMEOUT
    # Seconds an idle keep-alive connection stays open.
    keep_alive_timeout: int = DEFAULT_KEEP_ALIVE_TIMEOUT
    # Bytes of unfinished bodies held at once, across requests; past it, 503 `overloaded`.
    max_pending_body_bytes: int = DEFAULT_MAX_PENDING_BODY_BYTES
    # Seconds uvicorn waits for in-flight requests on SIGTERM.
    graceful_timeout: int = 25
