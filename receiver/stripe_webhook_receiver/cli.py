"""`stripe-webhook-receiver`: serve the receiver, or `stripe-webhook-receiver migrate`.

Every flag is also an environment variable `STRIPE_WEBHOOK_RECEIVER_<FLAG>` (dashes become
underscores); a flag on the command line wins over the variable.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import os
import re
import resource
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from stripe_webhook_receiver import logs, settings

ENV_PREFIX = "STRIPE_WEBHOOK_RECEIVER_"
DURATION = re.compile(r"^(\d+)([smhd]?)$")
UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Open files kept for what is not a client connection: the database, the secrets directory,
# the listening socket, logs.
RESERVED_FILES = 64


def duration(text: str) -> int:
    """Parse '300', '300s', '5m', '720h' or '30d' into seconds."""
    match = DURATION.match(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a duration; write seconds or a number with s, m, h or d, like '30d'."
        )
    return int(match.group(1)) * UNIT_SECONDS[match.group(2)]


def positive(text: str) -> int:
    """Parse a whole number of at least 1."""
    value = text.strip()
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(
            f"'{text}' is not a whole number of at least 1; write digits only, like '4096'."
        )
    return int(value)


def _env(flag: str, default: str) -> str:
    return os.environ.get(ENV_PREFIX + flag.upper().replace("-", "_"), default)


# The connection limits (protocol.py, body_budget.py): flag, parser, default, help.
LIMIT_FLAGS: tuple[tuple[str, Callable[[str], int], int, str], ...] = (
    (
        "max-connections",
        positive,
        settings.DEFAULT_MAX_CONNECTIONS,
        "open connections at once; one more is answered 503 and closed (default 2048)",
    ),
    (
        "max-header-bytes",
        positive,
        settings.DEFAULT_MAX_HEADER_BYTES,
        "bytes of a request line and headers; more, or over 100 headers, is answered 431 "
        "(default 16384)",
    ),
    (
        "client-timeout",
        duration,
        settings.DEFAULT_CLIENT_TIMEOUT,
        "how long a client may take to send a request's headers, to send its body, or to "
        "take an answer (default 10s)",
    ),
    (
        "keep-alive-timeout",
        duration,
        settings.DEFAULT_KEEP_ALIVE_TIMEOUT,
        "how long an idle keep-alive connection stays open (default 5s)",
    ),
    (
        "max-pending-body-bytes",
        positive,
        settings.DEFAULT_MAX_PENDING_BODY_BYTES,
        "bytes of unfinished request bodies held at once, across requests; past it 503 "
        "(default 67108864)",
    ),
)


def build_parser() -> argparse.ArgumentParser:
    """The command line, with defaults taken from the environment."""
    parser = argparse.ArgumentParser(
        prog="stripe-webhook-receiver",
        description="Verify Stripe subscription events and serve subscriber state.",
    )
    parser.add_argument(
        "command",
        nargs="?",
        choices=["serve", "migrate"],
        default="serve",
        help="serve (the default) or migrate: apply database migrations and exit",
    )
    parser.add_argument(
        "--secrets-dir",
        type=Path,
        default=Path(_env("secrets-dir", str(settings.DEFAULT_SECRETS_DIR))),
        help="directory of <namespace>.<name>.json webhook files (a mounted Secret)",
    )
    parser.add_argument(
        "--database-url",
        default=_env("database-url", settings.DEFAULT_DATABASE_URL),
        help="sqlite:////path/file.db or postgresql://user@host/db",
    )
    parser.add_argument("--host", default=_env("host", settings.DEFAULT_HOST))
    parser.add_argument("--port", type=int, default=int(_env("port", str(settings.DEFAULT_PORT))))
    parser.add_argument(
        "--tolerance",
        type=duration,
        default=_env("tolerance", str(settings.DEFAULT_TOLERANCE)),
        help="how far a signature's timestamp may be from now, either way (default 300s)",
    )
    parser.add_argument(
        "--retention",
        type=duration,
        default=_env("retention", str(settings.DEFAULT_RETENTION)),
        help="how long delivery records and processed event ids are kept (default 30d)",
    )
    for flag, kind, default, help_text in LIMIT_FLAGS:
        parser.add_argument(
            f"--{flag}", type=kind, default=_env(flag, str(default)), help=help_text
        )
    parser.add_argument(
        "--log-level",
        default=_env("log-level", "info"),
        choices=["debug", "info", "warning", "error"],
        type=str.lower,
    )
    return parser


def _migrate(database_url: str) -> int:
    from stripe_webhook_receiver.database import DatabaseUnavailable, open_database
    from stripe_webhook_receiver.migrations import migrate_sync

    log = logs.get("cli")
    database = open_database(database_url)
    try:
        applied = migrate_sync(database)
    except DatabaseUnavailable as exc:
        log.error(
            "Migrations failed: the database is unavailable.",
            extra={"fields": {"error": type(exc).__name__}},
        )
        return 1
    finally:
        database.close()
    log.info("Database schema is current.", extra={"fields": {"applied": applied}})
    return 0


def open_files_for(connections: int) -> int:
    """Raise the soft limit of open files to the hard one (what an unprivileged process may
    do) and return how many connections fit under it, at most `connections`."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
    fitting = max(soft - RESERVED_FILES, 1) if soft != resource.RLIM_INFINITY else connections
    if fitting < connections:
        logs.get("cli").warning(
            "The open-file limit leaves room for fewer connections than `--max-connections`; "
            "raise the limit (`ulimit -n`) or lower the flag.",
            extra={"fields": {"open_files": soft, "max_connections": fitting}},
        )
    return min(connections, fitting)


def _serve(config: settings.Settings) -> int:
    import uvicorn

    from stripe_webhook_receiver.app import create_app
    from stripe_webhook_receiver.protocol import ReceiverProtocol

    limits = dataclasses.replace(config, max_connections=open_files_for(config.max_connections))
    server = uvicorn.Server(
        uvicorn.Config(
            create_app(config),
            host=config.host,
            port=config.port,
            log_config=None,
            access_log=False,
            server_header=False,
            # Nothing here reads the client's address, so no middleware rewrites it from
            # X-Forwarded-For on every request.
            proxy_headers=False,
            # On SIGTERM uvicorn stops accepting, then waits this long for in-flight requests.
            timeout_graceful_shutdown=config.graceful_timeout,
            timeout_keep_alive=config.keep_alive_timeout,
            lifespan="on",
            # httptools (uvicorn's C parser) with the receiver's connection limits and JSON
            # answers to what it cannot parse (protocol.py); uvloop as the event loop.
            http=ReceiverProtocol.with_limits(limits),
            loop="uvloop",
        )
    )
    settle_collector()
    server.run()
    return 0 if server.started else 1


def settle_collector() -> None:
    """Keep what start-up made (modules, classes, the app) out of every later collection.

    Those ~46,000 objects live as long as the process, yet each full collection walked them
    all: a 26 ms pause of the event loop in a quiet benchmark run, longer than the receiver's
    whole p99 target. `gc.freeze` moves them to a generation the collector never scans; only
    the console script does it (tests build many apps in one process)."""
    gc.collect()
    gc.freeze()


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit status."""
    args = build_parser().parse_args(argv)
    logs.configure(args.log_level)
    if args.command == "migrate":
        return _migrate(args.database_url)
    config = settings.Settings(
        secrets_dir=args.secrets_dir,
        database_url=args.database_url,
        host=args.host,
        port=args.port,
        tolerance=args.tolerance,
        retention=args.retention,
        log_level=args.log_level,
        max_connections=args.max_connections,
        max_header_bytes=args.max_header_bytes,
        client_timeout=args.client_timeout,
        keep_alive_timeout=args.keep_alive_timeout,
        max_pending_body_bytes=args.max_pending_body_bytes,
    )
    return _serve(config)


if __name__ == "__main__":
    sys.exit(main())
