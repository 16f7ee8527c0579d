"""`kubectl stripe`: the kubectl plugin for cluster admins (console script `kubectl-stripe`).

    kubectl stripe rotate NAME [-n NS] [--overlap 1h] [--wait] [--timeout 10m]
    kubectl stripe status [NAME] [-n NS | -A]

`rotate` asks the operator for a new signing secret by writing a fresh value into the
`stripe.operator.dev/rotate` annotation (the operator starts one rotation per new value), and
with `--wait` follows `status` until the new endpoint is live. `status` prints one line per
StripeWebhook. Both read the current kubeconfig (`--kubeconfig`, else `KUBECONFIG`, else
~/.kube/config) and its current context (`--context`).

Exit codes: 0 done; 1 the cluster refused or could not be reached; 2 bad arguments;
3 `--wait` timed out (the rotation goes on in the background).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from stripe_webhook_operator.constants import (
    ANNOTATION_ROTATE,
    ANNOTATION_ROTATE_OVERLAP,
    CONDITION_READY,
    CONDITION_SECRET_PROPAGATED,
    CONDITION_SYNCED,
    GROUP,
    PLURAL,
    ROTATION_PHASE_IDLE,
    ROTATION_PHASE_OVERLAP,
    VERSION,
)
from stripe_webhook_operator.durations import parse_duration

EXIT_OK = 0
EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_TIMEOUT = 3

NONE = "<none>"
STATUS_HEADERS = (
    "NAMESPACE",
    "NAME",
    "ENDPOINT",
    "STRIPE STATUS",
    "SECRET VERSION",
    "LAST ROTATION",
    "OVERLAP ENDS",
    "READY",
    "SYNCED",
    "SECRETPROPAGATED",
)
# The operator's overlap bound for scheduled rotations is 720h; a request may go down to 0.
MAX_OVERLAP_SECONDS = 720 * 3600.0
REQUEST_TIMEOUT_SECONDS = 30


class PluginError(Exception):
    """A failure reported to the user as one sentence with an exit code, without a traceback."""

    def __init__(self, message: str, exit_code: int = EXIT_API_ERROR) -> None:
        super().__init__(message)
        self.exit_code = exit_code


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
        description="Rotate and inspect StripeWebhook signing secrets.",
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

    status = commands.add_parser(
        "status",
        parents=[connection],
        help="show endpoint, secret version and conditions of StripeWebhooks",
    )
    status.add_argument("name", metavar="NAME", nargs="?", help="only this StripeWebhook")
    status.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list StripeWebhooks in every namespace"
    )
    return parser


# --- status table -----------------------------------------------------------------------------


def condition_cell(conditions: Sequence[Mapping[str, Any]], condition_type: str) -> str:
    """Return 'True', or the status followed by its reason, e.g. 'False (ApiKeyMissing)'."""
    for condition in conditions:
        if condition.get("type") == condition_type:
            state = str(condition.get("status") or "Unknown")
            reason = condition.get("reason")
            if state == "True" or not reason:
                return state
            return f"{state} ({reason})"
    return NONE


def status_row(webhook: Mapping[str, Any]) -> list[str]:
    """Return the cells of one StripeWebhook's line in the `status` table."""
    metadata = webhook.get("metadata") or {}
    status = webhook.get("status") or {}
    conditions = status.get("conditions") or []

    def text(key: str) -> str:
        value = status.get(key)
        return NONE if value is None or value == "" else str(value)

    return [
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
        text("endpointId"),
        text("stripeStatus"),
        text("secretVersion"),
        text("lastRotationTime"),
        text("previousSecretExpiresAt"),
        condition_cell(conditions, CONDITION_READY),
        condition_cell(conditions, CONDITION_SYNCED),
        condition_cell(conditions, CONDITION_SECRET_PROPAGATED),
    ]


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Lay rows out in left-aligned columns three spaces apart, as kubectl does."""
    widths = [len(header) for header in headers]
    for row in rows:
        widths = [max(width, len(cell)) for width, cell in zip(widths, row, strict=True)]
    lines = []
    for row in [list(headers), *rows]:
        padded = [cell.ljust(width) for cell, width in zip(row, widths, strict=True)]
        lines.append("   ".join(padded).rstrip())
    return "\n".join(lines) + "\n"


def status_table(webhooks: Sequence[Mapping[str, Any]]) -> str:
    """Return the `status` table for these StripeWebhooks, sorted by namespace and name."""
    rows = sorted((status_row(webhook) for webhook in webhooks), key=lambda row: (row[0], row[1]))
    return format_table(STATUS_HEADERS, rows)


# --- rotation progress ------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationProgress:
    """What `rotate --wait` reads from a StripeWebhook's status at one moment."""

    secret_version: int
    phase: str
    request: str | None
    ready: str
    secret_propagated: str
    overlap_ends: str | None

    @classmethod
    def from_status(cls, status: Mapping[str, Any]) -> RotationProgress:
        """Read the progress fields out of a StripeWebhook's `status`."""
        rotation = status.get("rotation") or {}
        conditions = status.get("conditions") or []
        return cls(
            secret_version=int(status.get("secretVersion") or 0),
            phase=str(rotation.get("phase") or ROTATION_PHASE_IDLE),
            request=rotation.get("request"),
            ready=condition_cell(conditions, CONDITION_READY),
            secret_propagated=condition_cell(conditions, CONDITION_SECRET_PROPAGATED),
            overlap_ends=status.get("previousSecretExpiresAt"),
        )

    def is_done(self, start_version: int, request: str) -> bool:
        """Whether the rotation asked for with `request` has its new endpoint live.

        The operator bumps `secretVersion` when it writes the new secret and leaves the
        phase 'Overlap' (or 'Idle' with no overlap) once the new endpoint is enabled. When it
        records which request it is serving, a rotation queued behind another one is only
        done when that field names this request.
        """
        if self.secret_version <= start_version:
            return False
        if self.request is not None and self.request != request:
            return False
        return self.phase in (ROTATION_PHASE_IDLE, ROTATION_PHASE_OVERLAP)

    def describe(self) -> str:
        """One progress line for people."""
        return (
            f"secret version {self.secret_version}, rotation phase {self.phase}, "
            f"Ready {self.ready}, SecretPropagated {self.secret_propagated}"
        )


def new_rotate_value(previous: str | None, now: datetime.datetime | None = None) -> str:
    """Return a value for the rotate annotation that differs from `previous`.

    A UTC timestamp tells people when the rotation was asked for; a suffix keeps two requests
    within the same microsecond distinct.
    """
    moment = now or datetime.datetime.now(datetime.UTC)
    value = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    suffix = 1
    candidate = value
    while candidate == previous:
        suffix += 1
        candidate = f"{value}-{suffix}"
    return candidate


def rotate_patch(value: str, overlap: str | None) -> dict[str, Any]:
    """Return the merge patch that requests a rotation.

    Without `--overlap`, an overlap annotation left by an earlier request is removed, so that
    this rotation uses `spec.rotation.overlap` rather than, say, an old emergency '0'.
    """
    return {
        "metadata": {"annotations": {ANNOTATION_ROTATE: value, ANNOTATION_ROTATE_OVERLAP: overlap}}
    }


# --- Kubernetes access ------------------------------------------------------------------------


class Cluster:
    """The StripeWebhook API of one cluster, through the official Kubernetes client."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        # Imported here so `--help` and argument errors answer at once.
        from kubernetes import client
        from kubernetes import config as untyped_config
        from kubernetes.config.config_exception import ConfigException

        config: Any = untyped_config

        path = kubeconfig or os.path.expanduser("~/.kube/config")
        try:
            contexts, current = config.list_kube_config_contexts(config_file=path)
            chosen = current
            if context is not None:
                chosen = next((c for c in contexts if c.get("name") == context), None)
                if chosen is None:
                    raise PluginError(
                        f"The kubeconfig has no context '{context}'; "
                        "pick one listed by `kubectl config get-contexts`."
                    )
            api_client = config.new_client_from_config(
                config_file=path, context=context, persist_config=False
            )
        except (ConfigException, OSError) as exc:
            raise PluginError(
                f"Cannot load the kubeconfig '{path}' ({_first_line(exc)}); "
                "point `--kubeconfig` or `KUBECONFIG` at a working one."
            ) from exc
        self.default_namespace = str(
            ((chosen or {}).get("context") or {}).get("namespace") or "default"
        )
        self.server = str(api_client.configuration.host)
        self._api = client.CustomObjectsApi(api_client)

    def get(self, namespace: str, name: str) -> dict[str, Any]:
        """Return one StripeWebhook."""
        return self._call(
            self._api.get_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            what=f"StripeWebhook '{namespace}/{name}'",
        )

    def patch(self, namespace: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Merge-patch one StripeWebhook."""
        return self._call(
            self._api.patch_namespaced_custom_object,
            GROUP,
            VERSION,
            namespace,
            PLURAL,
            name,
            body,
            what=f"StripeWebhook '{namespace}/{name}'",
        )

    def list(self, namespace: str | None) -> list[dict[str, Any]]:
        """Return the StripeWebhooks of one namespace, or of all with None."""
        if namespace is None:
            result = self._call(
                self._api.list_cluster_custom_object,
                GROUP,
                VERSION,
                PLURAL,
                what="StripeWebhooks",
            )
        else:
            result = self._call(
                self._api.list_namespaced_custom_object,
                GROUP,
                VERSION,
                namespace,
                PLURAL,
                what=f"StripeWebhooks in namespace '{namespace}'",
            )
        return list(result.get("items") or [])

    def _call(self, method: Callable[..., Any], *args: Any, what: str) -> dict[str, Any]:
        from kubernetes.client.exceptions import ApiException
        from urllib3.exceptions import HTTPError

        try:
            result: dict[str, Any] = method(*args, _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except ApiException as exc:
            raise PluginError(_api_error_sentence(exc.status, _api_message(exc), what)) from exc
        except HTTPError as exc:
            raise PluginError(
                f"Cannot reach the Kubernetes API server at {self.server} "
                f"({type(exc).__name__}); check that the cluster runs and the kubeconfig "
                "points at it."
            ) from exc
        return result


def _api_message(exc: Any) -> str:
    import json

    try:
        return str(json.loads(exc.body).get("message") or exc.reason)
    except (TypeError, ValueError, AttributeError):
        return str(exc.reason)


def _api_error_sentence(status: int | None, message: str, what: str) -> str:
    if status == 404 and "could not find the requested resource" in message:
        return (
            "The StripeWebhook resource type is not installed in this cluster; "
            "apply crds/stripewebhooks.yaml (or install the Helm chart) first."
        )
    if status == 404:
        return f"{what} was not found; list them with `kubectl stripe status -A`."
    if status in (401, 403):
        return (
            f"The API server refused access to {what} ({message}); "
            "use a kubeconfig or context allowed to read and patch StripeWebhooks."
        )
    return f"The API server refused the request for {what}: {message}"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


# --- commands ---------------------------------------------------------------------------------


def run_status(cluster: Cluster, args: argparse.Namespace, out: Callable[[str], None]) -> int:
    """Print the status table."""
    namespace = None if args.all_namespaces else (args.namespace or cluster.default_namespace)
    if args.name is not None:
        if namespace is None:
            raise PluginError(
                "A NAME needs one namespace; drop `-A` and give `-n NAMESPACE`.", EXIT_USAGE
            )
        webhooks = [cluster.get(namespace, args.name)]
    else:
        webhooks = cluster.list(namespace)
    if not webhooks:
        where = "any namespace" if namespace is None else f"namespace '{namespace}'"
        out(f"No StripeWebhooks found in {where}.\n")
        return EXIT_OK
    out(status_table(webhooks))
    return EXIT_OK


def run_rotate(
    cluster: Cluster,
    args: argparse.Namespace,
    out: Callable[[str], None],
    poll_interval: float = 1.0,
) -> int:
    """Request a rotation and, with `--wait`, follow it until the new endpoint is live."""
    namespace = args.namespace or cluster.default_namespace
    webhook = cluster.get(namespace, args.name)
    annotations = (webhook.get("metadata") or {}).get("annotations") or {}
    start = RotationProgress.from_status(webhook.get("status") or {})
    value = new_rotate_value(annotations.get(ANNOTATION_ROTATE))
    cluster.patch(namespace, args.name, rotate_patch(value, args.overlap))
    overlap_note = "" if args.overlap is None else f" with overlap {args.overlap}"
    out(
        f"Requested rotation of StripeWebhook '{namespace}/{args.name}'{overlap_note} "
        f"({ANNOTATION_ROTATE}={value}).\n"
    )
    if not args.wait:
        return EXIT_OK
    return _wait_for_rotation(
        cluster,
        namespace,
        args.name,
        start.secret_version,
        value,
        args.timeout,
        poll_interval,
        out,
    )


def _wait_for_rotation(
    cluster: Cluster,
    namespace: str,
    name: str,
    start_version: int,
    request: str,
    timeout: float,
    poll_interval: float,
    out: Callable[[str], None],
) -> int:
    deadline = time.monotonic() + timeout
    last_line = ""
    progress = None
    # Bounded twice: by the deadline and by a count, in case the clock misbehaves.
    for _ in range(int(timeout / poll_interval) + 2):
        progress = RotationProgress.from_status(cluster.get(namespace, name).get("status") or {})
        line = progress.describe()
        if line != last_line:
            out(f"  {line}\n")
            last_line = line
        if progress.is_done(start_version, request):
            out(_done_sentence(namespace, name, progress))
            return EXIT_OK
        if time.monotonic() >= deadline:
            break
        time.sleep(min(poll_interval, max(deadline - time.monotonic(), 0.0)))
    phase = progress.phase if progress else "unknown"
    raise PluginError(
        f"Timed out waiting for the rotation of '{namespace}/{name}' (still in phase {phase}); "
        f"it goes on in the background: follow it with `kubectl stripe status -n {namespace}`.",
        EXIT_TIMEOUT,
    )


def _done_sentence(
    namespace: str, name: str, progress: RotationProgress, now: datetime.datetime | None = None
) -> str:
    """Say that the rotation is done and whether the previous secret is still accepted."""
    previous = "the previous secret is no longer accepted"
    if progress.overlap_ends and _parse_time(progress.overlap_ends) > (
        now or datetime.datetime.now(datetime.UTC)
    ):
        previous = f"the previous secret is accepted until {progress.overlap_ends}"
    return (
        f"Rotation of '{namespace}/{name}' done: secret version {progress.secret_version} "
        f"is live; {previous}.\n"
    )


def _parse_time(text: str) -> datetime.datetime:
    """Read an RFC 3339 time as Kubernetes writes it; an unreadable one counts as past."""
    try:
        moment = datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return datetime.datetime.min.replace(tzinfo=datetime.UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


def _fail(message: str, exit_code: int) -> NoReturn:
    sys.stderr.write(f"error: {message}\n")
    sys.exit(exit_code)


def main(argv: Sequence[str] | None = None) -> int:
    """Run `kubectl stripe` and return its exit code."""
    args = build_parser().parse_args(argv)

    def out(text: str) -> None:
        sys.stdout.write(text)
        sys.stdout.flush()

    try:
        cluster = Cluster(args.kubeconfig, args.context)
        if args.command == "rotate":
            return run_rotate(cluster, args, out)
        return run_status(cluster, args, out)
    except PluginError as exc:
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; a rotation already requested goes on in the background.", 130)
