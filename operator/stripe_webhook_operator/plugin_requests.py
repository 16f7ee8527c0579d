"""The two `kubectl stripe` commands that ask the operator for something and follow it:
`rotate` (a new signing secret, followed until the new endpoint is live) and `recover` (the
events since a moment redelivered, followed until the gap the operator recorded is closed).

Each writes a fresh request value into its annotation (the operator handles each value once)
and, when waiting, polls the StripeWebhook's status, printing a line whenever the progress it
reads changes; waiting is bounded by a deadline and by a count of polls.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Callable
from datetime import datetime

from stripe_webhook_operator import plugin_recovery
from stripe_webhook_operator.constants import (
    ANNOTATION_RECOVER,
    ANNOTATION_ROTATE,
    ANNOTATION_ROTATE_OVERLAP,
)
from stripe_webhook_operator.exceptions import (
    EXIT_BEYOND_RETENTION,
    EXIT_OK,
    EXIT_TIMEOUT,
    EXIT_USAGE,
    PluginError,
)
from stripe_webhook_operator.plugin_cluster import Cluster
from stripe_webhook_operator.plugin_recovery import RecoveryProgress, recover_annotations
from stripe_webhook_operator.plugin_view import RotationProgress, done_sentence
from stripe_webhook_operator.times import Clock, rfc3339


def new_rotate_value(previous: str | None, now: datetime) -> str:
    """Return a value for a request annotation (rotate, recover) that differs from `previous`.

    A UTC timestamp tells people when the request was made; a suffix keeps two requests
    within the same microsecond distinct.
    """
    value = rfc3339(now, microseconds=True)
    suffix = 1
    candidate = value
    while candidate == previous:
        suffix += 1
        candidate = f"{value}-{suffix}"
    return candidate


def rotate_annotations(value: str, overlap: str | None) -> dict[str, str | None]:
    """Return the annotations that request a rotation.

    Without `--overlap`, an overlap annotation left by an earlier request is removed, so that
    this rotation uses `spec.rotation.overlap` rather than, say, an old emergency '0'.
    """
    return {ANNOTATION_ROTATE: value, ANNOTATION_ROTATE_OVERLAP: overlap}


async def run_rotate(
    cluster: Cluster,
    args: argparse.Namespace,
    out: Callable[[str], None],
    now: Clock,
    poll_interval: float = 1.0,
) -> int:
    """Request a rotation and, with `--wait`, follow it until the new endpoint is live."""
    namespace = args.namespace or cluster.default_namespace
    webhook = await cluster.get(namespace, args.name)
    annotations = (webhook.get("metadata") or {}).get("annotations") or {}
    start = RotationProgress.from_status(webhook.get("status") or {})
    value = new_rotate_value(annotations.get(ANNOTATION_ROTATE), now())
    await cluster.annotate(namespace, args.name, rotate_annotations(value, args.overlap))
    overlap_note = "" if args.overlap is None else f" with overlap {args.overlap}"
    out(
        f"Requested rotation of StripeWebhook '{namespace}/{args.name}'{overlap_note} "
        f"({ANNOTATION_ROTATE}={value}).\n"
    )
    if not args.wait:
        return EXIT_OK
    return await _wait_for_rotation(
        cluster,
        namespace,
        args.name,
        start.secret_version,
        value,
        args.timeout,
        poll_interval,
        out,
        now,
    )


async def _wait_for_rotation(
    cluster: Cluster,
    namespace: str,
    name: str,
    start_version: int,
    request: str,
    wait_seconds: float,
    poll_interval: float,
    out: Callable[[str], None],
    now: Clock,
) -> int:
    deadline = time.monotonic() + wait_seconds
    last_line = ""
    progress = None
    # Bounded twice: by the deadline and by a count, in case the clock misbehaves.
    for _ in range(int(wait_seconds / poll_interval) + 2):
        progress = RotationProgress.from_status(
            (await cluster.get(namespace, name)).get("status") or {}
        )
        line = progress.describe()
        if line != last_line:
            out(f"  {line}\n")
            last_line = line
        if progress.is_done(start_version, request):
            out(done_sentence(namespace, name, progress, now()))
            return EXIT_OK
        if time.monotonic() >= deadline:
            break
        await asyncio.sleep(min(poll_interval, max(deadline - time.monotonic(), 0.0)))
    step = progress.step if progress else "unknown"
    raise PluginError(
        f"Timed out waiting for the rotation of '{namespace}/{name}' (still at step {step}); "
        f"it goes on in the background: follow it with `kubectl stripe status -n {namespace}`.",
        EXIT_TIMEOUT,
    )


def recover_since(args: argparse.Namespace, now: Clock) -> datetime:
    """Return the start of the interval `recover --since` asks for, or raise a usage error
    saying what to write (checked before the cluster is contacted)."""
    try:
        return plugin_recovery.recovery_since(args.since, now())
    except ValueError as exc:
        raise PluginError(str(exc), EXIT_USAGE) from exc


async def run_recover(
    cluster: Cluster,
    args: argparse.Namespace,
    out: Callable[[str], None],
    now: Clock,
    poll_interval: float = 1.0,
) -> int:
    """Request a recovery of the events since `--since` and, unless `--no-wait`, follow it
    until the gap it recorded is closed."""
    since = recover_since(args, now)
    moment = now()
    namespace = args.namespace or cluster.default_namespace
    webhook = await cluster.get(namespace, args.name)
    annotations = (webhook.get("metadata") or {}).get("annotations") or {}
    start = RecoveryProgress.from_status(webhook.get("status") or {})
    value = new_rotate_value(annotations.get(ANNOTATION_RECOVER), moment)
    await cluster.annotate(namespace, args.name, recover_annotations(value, since))
    out(
        f"Requested recovery of StripeWebhook '{namespace}/{args.name}' since {rfc3339(since)} "
        f"({ANNOTATION_RECOVER}={value}).\n"
    )
    if not args.wait:
        return EXIT_OK
    follow = _RecoveryFollow(cluster, namespace, args.name, value, since, start, out, now)
    return await follow.run(args.timeout, poll_interval)


class _RecoveryFollow:
    """`recover` waiting: polls the StripeWebhook until the operator took the request and no
    open gap holds any moment since `since`, printing each new progress line."""

    def __init__(
        self,
        cluster: Cluster,
        namespace: str,
        name: str,
        request: str,
        since: datetime,
        start: RecoveryProgress,
        out: Callable[[str], None],
        now: Clock,
    ) -> None:
        self.cluster, self.namespace, self.name = cluster, namespace, name
        self.request, self.since, self.start = request, since, start
        self.out, self.now = out, now
        # When the request was first seen handled: gaps opened after it are other incidents.
        self.handled_at: datetime | None = None

    async def run(self, wait_seconds: float, poll_interval: float) -> int:
        deadline = time.monotonic() + wait_seconds
        last_line = ""
        progress = self.start
        # Bounded twice: by the deadline and by a count, in case the clock misbehaves.
        for _ in range(int(wait_seconds / poll_interval) + 2):
            webhook = await self.cluster.get(self.namespace, self.name)
            progress = RecoveryProgress.from_status(webhook.get("status") or {})
            if self.handled_at is None and progress.handled(self.request):
                self.handled_at = self.now()
            until = self.handled_at or self.now()
            line = progress.describe(self.request, self.since, until)
            if line != last_line:
                self.out(f"  {line}\n")
                last_line = line
            if self.handled_at is not None and not progress.open_gaps(self.since, until):
                return self._finish(progress, until)
            if time.monotonic() >= deadline:
                break
            await asyncio.sleep(min(poll_interval, max(deadline - time.monotonic(), 0.0)))
        raise PluginError(self._timeout_sentence(progress), EXIT_TIMEOUT)

    def _finish(self, progress: RecoveryProgress, until: datetime) -> int:
        lost = progress.lost_between(self.since, until)
        if lost or progress.beyond_retention:
            raise PluginError(
                plugin_recovery.lost_sentence(
                    self.namespace, self.name, lost, progress.recovered_message
                ),
                EXIT_BEYOND_RETENTION,
            )
        self.out(
            plugin_recovery.done_sentence(
                self.namespace, self.name, self.since, self.start, progress
            )
        )
        return EXIT_OK

    def _timeout_sentence(self, progress: RecoveryProgress) -> str:
        where = f"'{self.namespace}/{self.name}'"
        follow = f"follow it with `kubectl stripe status {self.name} -n {self.namespace}`"
        if self.handled_at is None:
            return (
                f"Timed out waiting for the operator to take the recovery request of {where} "
                f"(`status.recovery.request` is still '{progress.request or ''}'); check that "
                f"the operator runs, then {follow}."
            )
        gaps = progress.open_gaps(self.since, self.handled_at)
        answered = sum(gap.answered for gap in gaps)
        listed = sum(gap.listed for gap in gaps)
        return (
            f"Timed out waiting for the recovery of {where} ({len(gaps)} gaps still open, "
            f"{answered} of {listed} events listed answered; Recovered {progress.recovered}); "
            f"it goes on in the background: {follow}."
        )
