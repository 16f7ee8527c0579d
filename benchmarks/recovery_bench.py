"""Recovery benchmark: events recovered per second for one gap of 10,000 events, against the
floor that Stripe's list page size and rate limit and the receiver's own rate set.

On the local stack (kube-apiserver + etcd + controller manager, the Stripe emulator limiting
the account to 25 requests/s as Stripe's test mode does, the real receiver fed by the Secret
projector, the real operator with recovery on): one StripeWebhook, subscribers registered at
the receiver, then 10,000 subscription updates made while the endpoint is disabled (the
account's limit lifted meanwhile, so that filling it takes seconds, not 400 s; the operator
stopped, so that nothing notices). Then the endpoint is enabled again, the limit put back, the
operator started, and a recover request (the annotations `kubectl stripe recover --since`
writes) opens one gap holding all 10,000. Timed from the operator taking the request (the gap
recorded, due at once) to the gap closed; the receiver's delivery records say when the first
and the last redelivery arrived, which splits the time into listing, delivering and closing.

The floor: ceil(events / 100) list calls at the account's rate limit, plus the events at the
receiver's rate for signed deliveries, measured afterwards on the same receiver and webhook
with fresh event ids: one at a time (what a sequential redeliverer can reach) and with
several in flight (what the receiver can take). Books: the emulator's own event log against
the receiver's tables (stack/devstack/project/recovery/books.py): 0 lost, 0 applied twice.

    make bench-recovery      (or: PYTHONPATH=stack .venv/bin/python -m benchmarks.recovery_bench
                              [--events 10000] [--subscribers 100]
                              [--workdir DIR --profile]: the recovering operator under cProfile)
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import json
import math
import os
import secrets
import sqlite3
import tempfile
import time
from collections.abc import Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import httpx

from benchmarks import report
from devstack.cluster.control_plane import ControlPlane
from devstack.cluster.kubectl import Kubectl
from devstack.processes import REPO_ROOT, VENV_BIN, poll
from devstack.project.objects import apply_crd
from devstack.project.operator_process import OperatorProcess
from devstack.project.receiver_process import FedReceiver
from devstack.project.recovery.books import Books
from devstack.project.recovery.stage import QUICK_RECOVERY, RecoveryStage, quiet_second
from devstack.project.rotation.run import operator_flags
from devstack.project.scene import RECEIVER_SECRET, open_scene
from devstack.stripe_emulator.fixtures import StripeTarget
from devstack.stripe_emulator.launcher import EmulatorProcess
from stripe_webhook_operator import constants as c
from stripe_webhook_operator.event_signing import signature_header
from stripe_webhook_operator.secret_value import SecretValue
from stripe_webhook_operator.times import rfc3339

SECTION: Final = "recovery"
EMULATOR_RATE: Final = 25.0  # requests/s per account, Stripe test mode's limit
OPERATOR_RATE: Final = 25.0  # the operator's `--stripe-rate`: not below the account's
PAGE_SIZE: Final = 100  # Stripe's largest list page
RETRY_SCHEDULE: Final = (0.2, 0.5)  # as tests/recovery: Stripe gives up within a second
PROBE_CONCURRENCY: Final = 8
CLOSE_TIMEOUT: Final = 600.0


@dataclass
class Options:
    events: int
    subscribers: int
    threads: int
    probe_events: int
    output: Path | None
    load_at_start: str
    workdir: Path | None = None
    profile: bool = False


@dataclass
class ReceiverRate:
    """Signed deliveries per second the receiver took with `in_flight` at a time."""

    in_flight: int
    events: int
    seconds: float
    failed: int

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


@dataclass
class Listing:
    """One paging through the gap's events with nothing limiting it: `pages` calls."""

    how: str
    pages: int
    events: int
    seconds: float

    @property
    def ms_per_page(self) -> float:
        return 1000 * self.seconds / self.pages if self.pages else 0.0


@dataclass
class Outcome:
    events: int
    subscribers: int
    generated_seconds: float
    taken_after: float  # from the request to the gap recorded
    seconds: float  # from the gap recorded to the gap closed
    first_delivery_after: float  # from the gap recorded to the first redelivery received
    last_delivery_after: float  # ... to the last
    stripe_calls: dict[str, int]
    rate_limited: int
    books: Books
    events_recovered: int
    rates: list[ReceiverRate] = field(default_factory=list)
    listings: list[Listing] = field(default_factory=list)
    load_during: str = ""

    @property
    def list_calls(self) -> int:
        return sum(n for call, n in self.stripe_calls.items() if call == "GET /v1/events")

    @property
    def per_second(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0


# --- pure helpers --------------------------------------------------------------------------


def list_floor_seconds(events: int, rate: float, page_size: int = PAGE_SIZE) -> float:
    """The least time listing `events` can take: one call per full or partial page, at
    `rate` calls per second."""
    return math.ceil(events / page_size) / rate if events else 0.0


def floor_seconds(events: int, list_rate: float, receiver_per_second: float) -> float:
    """The floor of one recovery: the listing at the rate limit, then every event at the
    receiver's rate (a redeliverer cannot post what it has not listed yet, nor faster than
    the receiver takes it)."""
    deliveries = events / receiver_per_second if receiver_per_second else math.inf
    return list_floor_seconds(events, list_rate) + deliveries


def probe_events(template: Mapping[str, Any], count: int, created: int) -> list[dict[str, Any]]:
    """`count` copies of the Stripe event `template`, each with an id of its own (so that the
    receiver applies each rather than dropping it as a duplicate), created at `created`."""
    tag = secrets.token_hex(4)
    copies = []
    for index in range(count):
        event = copy.deepcopy(dict(template))
        event["id"] = f"evt_probe{tag}{index:06d}"
        event["created"] = created
        copies.append(event)
    return copies


def signed(event: Mapping[str, Any], secret: SecretValue, now: int) -> tuple[bytes, str]:
    """The body and `Stripe-Signature` header Stripe would send for `event` at `now`."""
    payload = json.dumps(event, separators=(",", ":")).encode()
    return payload, signature_header(payload, secret, now)


def delivery_window(database: Path, webhook: str, event_ids: set[str]) -> tuple[float, float]:
    """Wall-clock seconds of the first and the last delivery of `event_ids` the receiver
    recorded for `webhook`."""
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=10)) as db:
        rows = db.execute(
            "SELECT event_id, received_at FROM deliveries WHERE webhook = ?", (webhook,)
        ).fetchall()
    stamps = [received / 1000 for event_id, received in rows if event_id in event_ids]
    if not stamps:
        return math.nan, math.nan
    return min(stamps), max(stamps)


# --- the run -------------------------------------------------------------------------------


async def post_all(
    url: str, events: Sequence[Mapping[str, Any]], secret: SecretValue, in_flight: int
) -> ReceiverRate:
    """Post `events` to `url`, signed, with `in_flight` requests at a time; time them."""
    queue = list(reversed(events))
    failed = 0

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal failed
        while queue:
            event = queue.pop()
            body, header = signed(event, secret, int(time.time()))
            answer = await client.post(
                url,
                content=body,
                headers={"Content-Type": "application/json", "Stripe-Signature": header},
            )
            failed += not 200 <= answer.status_code < 300

    limits = httpx.Limits(max_connections=in_flight, max_keepalive_connections=in_flight)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        began = time.monotonic()
        await asyncio.gather(*(worker(client) for _ in range(in_flight)))
        seconds = time.monotonic() - began
    return ReceiverRate(in_flight, len(events), seconds, failed)


def measure_receiver(stage: RecoveryStage, count: int) -> list[ReceiverRate]:
    """The receiver's rate for signed deliveries of fresh events of the stage's webhook, one
    at a time and `PROBE_CONCURRENCY` at a time."""
    listed = httpx.get(
        f"{stage.scene.stripe.base_url}/v1/events",
        params={"type": "customer.subscription.updated", "limit": 1},
        auth=(stage.scene.api_key, ""),
        timeout=10,
    )
    listed.raise_for_status()
    template = listed.json()["data"][0]
    secret = SecretValue(stage.scene.secret(stage.secret_name)[c.SECRET_KEY_SIGNING])
    url = f"{stage.receiver.url}/webhooks/{stage.scene.namespace}/{stage.name}"
    rates = []
    for in_flight, share in ((1, count // 4), (PROBE_CONCURRENCY, count)):
        events = probe_events(template, share, int(time.time()))
        rates.append(asyncio.run(post_all(url, events, secret, in_flight)))
        print(f"    receiver, {in_flight} in flight: {rates[-1].per_second:.0f}/s", flush=True)
    return rates


def list_params(since: int, until: int) -> dict[str, Any]:
    """The operator's listing of the gap (stripe_api.list_events), as query parameters."""
    return {
        "types[0]": "customer.subscription.updated",
        "created[gte]": since,
        "created[lte]": until,
        "limit": PAGE_SIZE,
    }


def measure_listing(stage: RecoveryStage, since: int, until: int) -> list[Listing]:
    """Page through the gap's events with the account's limit lifted: the emulator's own time
    per page (raw JSON through httpx), and that plus stripe-python's parsing of each page into
    its objects (what the operator's gateway does)."""
    stripe, api_key = stage.scene.stripe, stage.scene.api_key
    stripe.set_rate_limit(api_key, None)
    found = []
    try:
        began, pages, events, after = time.monotonic(), 0, 0, None
        with httpx.Client(base_url=stripe.base_url, auth=(api_key, ""), timeout=30) as http:
            while True:
                params = list_params(since, until) | ({"starting_after": after} if after else {})
                page = http.get("/v1/events", params=params).raise_for_status().json()
                pages, events = pages + 1, events + len(page["data"])
                if not page["has_more"] or not page["data"]:
                    break
                after = page["data"][-1]["id"]
        found.append(Listing("raw JSON (httpx)", pages, events, time.monotonic() - began))
        client = stage.scene.client()
        began, pages, events, cursor = time.monotonic(), 0, 0, None
        while True:
            query: dict[str, Any] = {
                "types": ["customer.subscription.updated"],
                "created": {"gte": since, "lte": until},
                "limit": PAGE_SIZE,
            }
            if cursor:
                query["starting_after"] = cursor
            listed = client.v1.events.list(params=query)  # type: ignore[arg-type]
            pages, events = pages + 1, events + len(listed.data)
            if not listed.has_more or not listed.data:
                break
            cursor = listed.data[-1].id
        found.append(Listing("stripe-python objects", pages, events, time.monotonic() - began))
    finally:
        stripe.set_rate_limit(api_key, EMULATOR_RATE)
    for listing in found:
        print(f"    listing, {listing.how}: {listing.ms_per_page:.0f} ms/page", flush=True)
    return found


def fill_gap(stage: RecoveryStage, options: Options) -> tuple[int, float]:
    """Make `options.events` updates Stripe sends nowhere (the endpoint disabled, the operator
    stopped, the account unlimited); return the second they began at and how long they
    took."""
    stripe, api_key = stage.scene.stripe, stage.scene.api_key
    endpoint = str(stage.body()["status"]["endpointId"])
    stage.operators[-1].stop(timeout=30)
    stripe.disable_endpoint(endpoint)
    since = quiet_second()
    began = time.monotonic()
    stage.change(options.events, threads=options.threads)
    took = time.monotonic() - began
    stage.scene.client().v1.webhook_endpoints.update(endpoint, params={"disabled": False})
    stripe.set_rate_limit(api_key, EMULATOR_RATE)
    return since, took


def profile_path(options: Options) -> Path:
    assert options.workdir is not None
    return options.workdir / "operator.prof"


def start_recovering_operator(stage: RecoveryStage, options: Options) -> OperatorProcess:
    """Start the operator that takes the recover request (under cProfile with `--profile`)."""
    flags = (f"--stripe-rate={OPERATOR_RATE:g}", "--drift-interval=1h")
    if not options.profile:
        return stage.start_operator(*flags)
    scene = stage.scene
    operator = OperatorProcess(
        scene.kubectl.kubeconfig,
        scene.stripe.base_url,
        scene.namespace,
        profile_path(options).parent / "logs",
        scene.cluster_id,
        extra_args=(*operator_flags(stage.receiver), *QUICK_RECOVERY, *flags),
        wrapper=[str(VENV_BIN / "python"), "-m", "cProfile", "-o", str(profile_path(options))],
        name="operator-profiled",
    ).start()
    stage.operators.append(operator)
    return operator


def print_profile(path: Path, lines: int = 25) -> None:
    """Print the functions the operator spent most of its own time in."""
    import pstats

    for order in ("tottime", "cumulative"):
        print(f"    operator profile by {order}:", flush=True)
        pstats.Stats(str(path)).sort_stats(order).print_stats(lines)


def request_recovery(stage: RecoveryStage, since: int) -> str:
    """Write the annotations of `kubectl stripe recover --since` and return the request id."""
    request = rfc3339(datetime.now(UTC), microseconds=True)
    stage.scene.kubectl(
        "annotate",
        "stripewebhook",
        stage.name,
        "-n",
        stage.scene.namespace,
        "--overwrite",
        f"{c.ANNOTATION_RECOVER}={request}",
        f"{c.ANNOTATION_RECOVER_SINCE}={rfc3339(datetime.fromtimestamp(since, UTC))}",
    )
    return request


def recover_once(stage: RecoveryStage, options: Options) -> Outcome:
    """Set the stage up, fill one gap, recover it, count it."""
    stripe, api_key = stage.scene.stripe, stage.scene.api_key
    stripe.set_rate_limit(api_key, None)
    stage.start_operator(f"--stripe-rate={OPERATOR_RATE:g}", "--drift-interval=1h")
    stage.create()
    stage.subscribe(options.subscribers)
    stage.settle(timeout=60)
    print(f"    {options.subscribers} subscribers registered", flush=True)
    since, generated = fill_gap(stage, options)
    print(f"    {options.events} updates made in {generated:.1f} s", flush=True)
    operator = start_recovering_operator(stage, options)
    time.sleep(3.0)  # the start's own calls (its first scan, the drift check) are not counted
    stripe.reset_stats(api_key)

    asked = time.time()
    request = request_recovery(stage, since)
    poll(
        "the operator taking the recover request",
        lambda: stage.recovery().get("request") == request and stage.recovery().get("gaps"),
        timeout=60,
    )
    taken = time.time()
    load_during = report.load_text()
    recovery = stage.wait_closed(timeout=CLOSE_TIMEOUT)
    closed = time.time()
    stats = stripe.stats(api_key)
    print(f"    gap closed {closed - taken:.1f} s after it was taken", flush=True)
    if options.profile:
        operator.stop(timeout=60)  # SIGTERM: cProfile writes its stats as the operator exits
        print_profile(profile_path(options))

    stage.settle(timeout=60)
    books = stage.books(created_from=since)
    updated = {e["id"] for e in stage.updates() if e["created"] >= since}
    first, last = delivery_window(stage.receiver.database, stage.webhook, updated)
    outcome = Outcome(
        events=options.events,
        subscribers=options.subscribers,
        generated_seconds=generated,
        taken_after=taken - asked,
        seconds=closed - taken,
        first_delivery_after=first - taken,
        last_delivery_after=last - taken,
        stripe_calls=dict(stats["calls"]),
        rate_limited=int(stats["rate_limited"]),
        books=books,
        events_recovered=int(recovery.get("eventsRecovered") or 0),
        load_during=load_during,
    )
    outcome.listings = measure_listing(stage, since, int(taken))
    outcome.rates = measure_receiver(stage, options.probe_events)
    return outcome


def run(options: Options, workdir: Path) -> Outcome:
    plane = ControlPlane(workdir / "kube").start()
    emulator = EmulatorProcess(
        workdir / "stripe", rate_limit=EMULATOR_RATE, retry_schedule=RETRY_SCHEDULE
    )
    try:
        emulator.start()
        kubectl = Kubectl(plane.kubeconfig, workdir / "kubectl-cache")
        apply_crd(kubectl)
        stripe = StripeTarget(emulator.base_url)
        namespace = f"bench-recovery-{secrets.token_hex(3)}"
        with (
            kubectl.temporary_namespace(namespace),
            open_scene(kubectl, plane.kubeconfig, stripe, namespace, workdir / "logs") as scene,
        ):
            receiver = FedReceiver(
                plane.kubeconfig, namespace, RECEIVER_SECRET, workdir / "receiver"
            )
            try:
                return recover_once(RecoveryStage(scene, receiver.start(), "shop"), options)
            finally:
                receiver.stop()
    finally:
        emulator.stop()
        plane.stop()


# --- the report ----------------------------------------------------------------------------


def best_rate(outcome: Outcome) -> ReceiverRate | None:
    return max(outcome.rates, key=lambda r: r.per_second, default=None)


def figures_table(o: Outcome) -> str:
    best = best_rate(o)
    receiver_rate = best.per_second if best else 0.0
    floor = floor_seconds(o.events, min(EMULATOR_RATE, OPERATOR_RATE), receiver_rate)
    listing = list_floor_seconds(o.events, min(EMULATOR_RATE, OPERATOR_RATE))
    pages = math.ceil(o.events / PAGE_SIZE)
    rows = [
        ["events in the gap", f"{o.events:,}", f"updates of {o.subscribers} subscriptions"],
        ["recover request to gap recorded", f"{o.taken_after:.1f} s", "one operator pass"],
        ["gap recorded to gap closed", f"{o.seconds:.1f} s", ""],
        ["events recovered per second", f"{o.per_second:.0f}", ""],
        [
            "floor",
            f"{floor:.1f} s ({o.events / floor:.0f}/s)" if floor else report.DASH,
            f"{pages} list calls at {min(EMULATOR_RATE, OPERATOR_RATE):g}/s = {listing:.1f} s, "
            f"plus {o.events:,} at the receiver's {receiver_rate:.0f}/s "
            f"({PROBE_CONCURRENCY} in flight)",
        ],
        ["time / floor", f"{o.seconds / floor:.2f}" if floor else report.DASH, ""],
        [
            "first redelivery received",
            f"{o.first_delivery_after:.1f} s",
            "after the gap was recorded: the round's wait and the listing",
        ],
        [
            "last redelivery received",
            f"{o.last_delivery_after:.1f} s",
            f"{o.events / max(o.last_delivery_after - o.first_delivery_after, 1e-9):.0f}/s "
            "between the first and the last",
        ],
        [
            "Stripe calls",
            ", ".join(f"{n} `{call}`" for call, n in sorted(o.stripe_calls.items())) or "0",
            f"{o.rate_limited} answered 429; the floor's listing: {pages}",
        ],
        ["eventsRecovered in status", f"{o.events_recovered:,}", ""],
        [
            "books (emulator's event log against the receiver)",
            f"{len(o.books.emitted):,} created, {len(o.books.lost)} lost, "
            f"{len(o.books.applied_twice)} applied twice",
            f"{len(o.books.unknown)} applied that Stripe never created",
        ],
    ]
    return report.markdown_table(["", "measured", "how"], rows)


def rates_table(o: Outcome) -> str:
    rows = [
        [
            str(r.in_flight),
            f"{r.events:,}",
            f"{r.seconds:.1f}",
            f"{r.per_second:.0f}",
            f"{1000 * r.seconds * r.in_flight / r.events:.1f}" if r.events else report.DASH,
            str(r.failed),
        ]
        for r in o.rates
    ]
    headers = ["in flight", "events", "s", "events/s", "ms per delivery", "not 2xx"]
    return report.markdown_table(headers, rows)


def listings_table(o: Outcome) -> str:
    rows = [
        [x.how, str(x.pages), f"{x.events:,}", f"{x.seconds:.1f}", f"{x.ms_per_page:.0f}"]
        for x in o.listings
    ]
    return report.markdown_table(["listing", "pages", "events", "s", "ms per page"], rows)


def document(o: Outcome, options: Options) -> str:
    facts = report.machine_facts(options.load_at_start)
    facts.insert(4, ("Load average (1, 5, 15 min) during the recovery", o.load_during))
    versions = report.package_versions(["kopf", "stripe", "starlette", "uvicorn", "httpx"])
    parts = [
        "## Recovery (`make bench-recovery`)",
        "",
        f"One gap of {o.events:,} `customer.subscription.updated` events, recovered by the "
        "operator on the local stack: the Stripe emulator limiting the account to "
        f"{EMULATOR_RATE:g} requests/s, the operator with `--stripe-rate {OPERATOR_RATE:g}`, "
        "the real receiver on SQLite. The events are made while the endpoint is disabled "
        f"({o.generated_seconds:.0f} s, the account's limit lifted for it), then a recover "
        "request since their first second opens the gap. The receiver's rate is measured "
        "afterwards with fresh events signed for the same webhook.",
        "",
        figures_table(o),
        "",
        "The receiver's rate for signed deliveries (each a new event, applied and committed):",
        "",
        rates_table(o),
        "",
        "The same listing with the account's limit lifted, paged one call after another as "
        "cursors require: the emulator's own time per page, and with stripe-python's "
        "parsing (the operator's gateway):",
        "",
        listings_table(o),
        "",
        *report.closing_sections(facts + versions, notes(o)),
    ]
    return "\n".join(parts)


def notes(o: Outcome) -> list[str]:
    """What bounds each part of the time, from the run's own figures."""
    rate = min(EMULATOR_RATE, OPERATOR_RATE)
    listing = list_floor_seconds(o.events, rate)
    delivering = o.last_delivery_after - o.first_delivery_after
    found = [
        f"Listing: the first redelivery came {o.first_delivery_after:.1f} s after the gap was "
        f"recorded, against the rate limit's {listing:.1f} s. A round waits 1 s first (so that "
        "the webhooks of an account asking together share one listing), then pages one call "
        "after another: a cursor is the previous page's last id, so the pages cannot overlap, "
        "and each page costs what the server takes for it, here the emulator's own time per "
        "page below (it filters the account's every event for each call, in Python, on the "
        "same two cores). At that cost sequential paging stays under the 25 calls/s the "
        "limit allows; against Stripe its latency per call bounds it the same way.",
    ]
    by_how = {x.how: x for x in o.listings}
    raw, parsed = by_how.get("raw JSON (httpx)"), by_how.get("stripe-python objects")
    if raw and parsed:
        found.append(
            f"stripe-python's objects cost {parsed.ms_per_page - raw.ms_per_page:.0f} ms per "
            f"page on top of the emulator's {raw.ms_per_page:.0f} ms: the operator built them "
            "for every page and then read the JSON beside them; it now reads the JSON only "
            "(`stripe_api.list_events`)."
        )
    rates = {r.in_flight: r.per_second for r in o.rates}
    if delivering > 0:
        found.append(
            f"Delivering: {o.events / delivering:.0f} events/s between the first and the last "
            "redelivery, in the operator's default 8 lanes (one subscription's events in one lane, "
            "oldest first, each signed as Stripe signs it), "
            f"against the receiver's {rates.get(1, 0):.0f}/s one at a time and "
            f"{rates.get(PROBE_CONCURRENCY, 0):.0f}/s with {PROBE_CONCURRENCY} in flight, "
            "measured afterwards: operator, receiver and emulator share the two cores with the "
            "machine's other work (the load averages above), so their CPU bounds it."
        )
    found.append(
        "The Stripe calls are counted from the recover request to the gap closed: the listing "
        "of the gap, and the rounds' scans for failed deliveries (`delivery_success=false`, "
        "one call each when nothing failed)."
    )
    return found


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=10_000, help="events in the gap")
    parser.add_argument("--subscribers", type=int, default=100, help="subscriptions updated")
    parser.add_argument("--threads", type=int, default=8, help="threads making the updates")
    parser.add_argument(
        "--probe-events", type=int, default=1000, help="fresh events posted to time the receiver"
    )
    parser.add_argument("--workdir", type=Path, default=None, help="keep files and logs here")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run the recovering operator under cProfile (needs --workdir; prints the top)",
    )
    report.add_output_option(parser)
    args = parser.parse_args(argv)
    options = Options(
        events=args.events,
        subscribers=args.subscribers,
        threads=args.threads,
        probe_events=args.probe_events,
        output=report.output_path(args.output),
        load_at_start=report.load_text(),
        workdir=args.workdir,
        profile=args.profile,
    )
    if options.profile and options.workdir is None:
        parser.error("--profile needs --workdir, where the profile is written")
    return options


def main(argv: Sequence[str] | None = None) -> Outcome:
    """Run the recovery benchmark, print its tables, and write its docs section."""
    options = parse_options(argv)
    os.environ["PATH"] = f"{REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    if options.workdir is not None:
        options.workdir.mkdir(parents=True, exist_ok=True)
        outcome = run(options, options.workdir)
    else:
        with tempfile.TemporaryDirectory(prefix="bench-recovery-") as tmp:
            outcome = run(options, Path(tmp))
    report.publish(SECTION, document(outcome, options), options.output)
    return outcome


if __name__ == "__main__":
    main()
