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
    # Seconds uvicorn waits for in-flight requests on SIGTERM.
    graceful_timeout: int = 25
