"""`kubectl stripe`: the kubectl plugin for cluster admins (console script `kubectl-stripe`).

    kubectl stripe rotate NAME [-n NS] [--overlap 1h] [--wait] [--timeout 10m]
    kubectl stripe recover NAME [-n NS] --since 48h|2026-11-30T12:00:00Z [--no-wait] [--timeout 10m]
    kubectl stripe status [NAME] [-n NS | -A]

`rotate` asks the operator for a new signing secret by writing a fresh value into the
`stripe.operator.dev/rotate` annotation (the operator starts one rotation per new value), and
with `--wait` follows `status` until the new endpoint is live. `recover` asks the operator to
redeliver every event since a moment (after a receiver's database was restored from a backup,
say) by writing a fresh `stripe.operator.dev/recover` value and the interval's start into
`stripe.operator.dev/recover-since`, then follows `status.recovery` until the gap it recorded
is closed. `status` prints one line per StripeWebhook, then its open recovery gaps. All read
the current kubeconfig (`--kubeconfig`, else `KUBECONFIG`, else ~/.kube/config) and its
current context (`--context`), and call the API server through the operator's own Kubernetes
client (kube.py).

Exit codes: 0 done; 1 the cluster refused or could not be reached; 2 bad arguments;
3 waiting timed out (the rotation or recovery goes on in the background); 4 the recovery
reached events beyond Stripe's 30-day retention (they are lost; the interval is printed).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, NoReturn

from stripe_webhook_operator import plugin_recovery
from stripe_webhook_operator.exceptions import (
    EXIT_API_ERROR,
    EXIT_BEYOND_RETENTION,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    PluginError,
)
from stripe_webhook_operator.plugin_cluster import Cluster
from stripe_webhook_operator.plugin_requests import (
    new_rotate_value,
    recover_since,
    rotate_annotations,
    run_recover,
    run_rotate,
)
from stripe_webhook_operator.plugin_view import status_table
from stripe_webhook_operator.times import Clock, parse_duration, utc_now

__all__ = [
    "EXIT_API_ERROR",
    "EXIT_BEYOND_RETENTION",
    "EXIT_OK",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "PluginError",
    "main",
    "new_rotate_value",
    "rotate_annotations",
]

MAX_OVERLAP_SECONDS = 720 * 3600.0


# --- arguments --------------------------------------------------------------------------------


def _overlap_argument(text: str) -> str:
    seconds = parse_duration(text)
    if seconds > MAX_OVERLAP_SECONDS:
        raise ValueError(f"'{text}' is longer than 720h; choose an overlap of at most 720h")
    return text


def _timeout_argument(text: str) -> float:
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError(f"'{text}' must be longer than 0, e.g. '10m'")
    return seconds


def _argparse_type(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """Turn a parser's ValueError into argparse's usage error, keeping its sentence."""

    def convert(text: str) -> Any:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return convert


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of `kubectl stripe`."""
    connection = argparse.ArgumentParser(add_help=False)
    connection.add_argument(
        "--kubeconfig",
        default=os.environ.get("KUBECONFIG"),
        help="kubeconfig file (default: $KUBECONFIG, else ~/.kube/config)",
    )
    connection.add_argument("--context", help="kubeconfig context (default: the current one)")
    connection.add_argument(
        "-n",
        "--namespace",
        help="namespace (default: the context's namespace, else 'default')",
    )

    parser = argparse.ArgumentParser(
        prog="kubectl stripe",
        description=(
            "Rotate StripeWebhook signing secrets, recover undelivered events, and inspect both."
        ),
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    rotate = commands.add_parser(
        "rotate",
        parents=[connection],
        help="start a signing-secret rotation",
        description=(
            "Ask the operator to rotate the signing secret of a StripeWebhook: a new endpoint "
            "and secret, with the previous secret accepted for the overlap."
        ),
    )
    rotate.add_argument("name", metavar="NAME", help="the StripeWebhook")
    rotate.add_argument(
        "--overlap",
        type=_argparse_type(_overlap_argument),
        help=(
            "how long the previous secret stays valid, as a duration such as '1h' (default: "
            "`spec.rotation.overlap`); '0' for a leaked secret: it stops verifying at once"
        ),
    )
    rotate.add_argument(
        "--wait", action="store_true", help="follow the rotation until the new endpoint is live"
    )
    rotate.add_argument(
        "--timeout",
        type=_argparse_type(_timeout_argument),
        default=600.0,
        help="how long --wait waits, as a duration (default 10m)",
    )

    recover = commands.add_parser(
        "recover",
        parents=[connection],
        help="redeliver the events since a moment to the receiver",
        description=(
            "Ask the operator to list the StripeWebhook's events since a moment from Stripe's "
            "Events API and deliver each to the receiver again (it ignores those it has), "
            "e.g. after restoring the receiver's database from a backup; then wait until "
            "every one got a definite answer."
        ),
    )
    recover.add_argument("name", metavar="NAME", help="the StripeWebhook")
    recover.add_argument(
        "--since",
        required=True,
        help=(
            "the start of the interval: how far back, as a duration such as '48h', or an "
            "RFC 3339 time such as '2026-11-30T12:00:00Z'; at most 719h back (Stripe keeps "
            "events 30 days)"
        ),
    )
    recover.add_argument(
        "--no-wait",
        dest="wait",
        action="store_false",
        help="only record the request; the operator recovers in the background",
    )
    recover.add_argument(
        "--timeout",
        type=_argparse_type(_timeout_argument),
        default=600.0,
        help="how long to wait for the recovery, as a duration (default 10m)",
    )

    status = commands.add_parser(
        "status",
        parents=[connection],
        help=(
            "show endpoint, secret version, conditions, rotation step and open recovery gaps "
            "of StripeWebhooks"
        ),
    )
    status.add_argument("name", metavar="NAME", nargs="?", help="only this StripeWebhook")
    status.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list StripeWebhooks in every namespace"
    )
    return parser


# --- commands ---------------------------------------------------------------------------------


async def run_status(cluster: Cluster, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """Print the status table."""
    namespace = None if args.all_namespaces else (args.namespace or cluster.default_namespace)
    if args.name is not None:
        if namespace is None:
            raise PluginError(
                "A NAME needs one namespace; drop `-A` and give `-n NAMESPACE`.", EXIT_USAGE
            )
        webhooks = [await cluster.get(namespace, args.name)]
    else:
        webhooks = await cluster.list(namespace)
    if not webhooks:
        where = "any namespace" if namespace is None else f"namespace '{namespace}'"
        out(f"No StripeWebhooks found in {where}.\n")
        return EXIT_OK
    out(status_table(webhooks))
    out(plugin_recovery.gaps_table(webhooks))
    return EXIT_OK


def _fail(message: str, exit_code: int) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(exit_code)


async def run(args: argparse.Namespace, out: Callable[[str], None], now: Clock = utc_now) -> int:
    """Carry out the parsed command `args`, writing to `out`; return the exit code."""
    if args.command == "recover":
        recover_since(args, now)  # a bad `--since` is refused before any connection
    async with Cluster(args.kubeconfig, args.context) as cluster:
        if args.command == "rotate":
            return await run_rotate(cluster, args, out, now)
        if args.command == "recover":
            return await run_recover(cluster, args, out, now)
        return await run_status(cluster, args, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `kubectl stripe` and return its exit code."""
    args = build_parser().parse_args(argv)

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        return asyncio.run(run(args, out))
    except PluginError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail(
            "interrupted; a rotation or recovery already requested goes on in the background.",
            130,
        )
