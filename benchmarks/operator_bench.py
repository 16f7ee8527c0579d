"""Operator benchmark: time to Ready, calls per StripeWebhook and memory, beside kopf's floor.

On the local stack (kube-apiserver + etcd + controller manager, the Stripe emulator limiting
each account to 25 requests/s as Stripe's test mode does), for each N: apply N StripeWebhooks
at once across ceil(N / 10) accounts, and measure until all are Ready; then restart the
operator with all N unchanged; then watch one drift interval. The baseline is a no-op kopf
operator (benchmarks/baselines/noop_operator.py) handling the same N objects. Prints the
tables and writes them into docs/benchmarks.md.

    make bench-operator      (or: PYTHONPATH=stack .venv/bin/python -m benchmarks.operator_bench
                              [--quick] [--sizes 100,500,1000])
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import secrets
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from benchmarks import report
from benchmarks.configurations import CHILD_PYTHONPATH
from benchmarks.kubeapi import GROUP, VERSION, KubeApi
from benchmarks.processes import process_tree_peak_kib, process_tree_rss_kib
from devstack.processes import REPO_ROOT, VENV_BIN, ManagedProcess, free_port, wait_answering
from devstack.project.operator_process import OPERATOR_SCRIPT, OperatorProcess

SECTION = "operator"
CRD_PATH = REPO_ROOT / "crds" / "stripewebhooks.yaml"
NOOP_OPERATOR = REPO_ROOT / "benchmarks" / "baselines" / "noop_operator.py"
MEMORY_PROBE = REPO_ROOT / "benchmarks" / "memory_probe"
EMULATOR_RATE = 25.0  # requests/s per account, Stripe test mode's limit
OPERATOR_RATE = 25.0  # the operator's own budget across accounts (`--stripe-rate`)
PER_ACCOUNT = 10  # StripeWebhooks per account: Stripe allows 16 endpoints, rotation needs room
PUBLIC_BASE_URL = "https://hooks.bench.example"
START_TIMEOUT = 60.0
POLL = 0.5
QUIET_SECONDS = 5.0
# After a restart, how long ours may take to make its first Stripe call before we stop
# waiting for one (it makes none if it trusts its stored state).
FIRST_CALL_WITHIN = 60.0
TARGET_READY_RATIO = 1.2
TARGET_RSS_MIB = 200.0
WRITE_METHODS = ("POST", "DELETE")


@dataclass
class Options:
    sizes: list[int]
    operators: list[str]
    drift_interval: float
    ready_timeout: float
    output: Path | None
    load_at_start: str = ""
    workdir: Path | None = None
    log_level: str = "WARNING"
    profile: bool = False
    memory_probe: bool = False
    tracemalloc: bool = False


@dataclass
class Phase:
    """What one phase cost: wall time, Stripe calls by `METHOD /path`, Kubernetes calls."""

    seconds: float
    stripe: Counter[str] = field(default_factory=Counter)
    stripe_by_account: dict[str, int] = field(default_factory=dict)
    kube: float = 0.0
    rss_peak_kib: int = 0
    complete: bool = True
    # Restart: seconds from the start until the last Stripe call (None: no call at all).
    settled: float | None = None

    @property
    def stripe_total(self) -> int:
        return sum(self.stripe.values())

    @property
    def stripe_writes(self) -> int:
        return sum(n for call, n in self.stripe.items() if call.split(" ")[0] in WRITE_METHODS)

    def stripe_calls(self, prefix: str) -> int:
        return sum(n for call, n in self.stripe.items() if call.startswith(prefix))


@dataclass
class Round:
    operator: str
    size: int
    accounts: int
    create: Phase
    restart: Phase | None = None
    drift: Phase | None = None


class Stack:
    """The control plane, the Stripe emulator and the clients to both."""

    def __init__(self, workdir: Path) -> None:
        from devstack.cluster.control_plane import ControlPlane
        from devstack.stripe_emulator.launcher import EmulatorProcess

        self.workdir = workdir
        self.control_plane = ControlPlane(workdir / "kube")
        self.emulator = EmulatorProcess(workdir / "stripe", rate_limit=EMULATOR_RATE)
        self.kube: KubeApi | None = None
        self.http = httpx.AsyncClient(timeout=30)
        self.background_per_second = 0.0

    async def start(self) -> None:
        await asyncio.to_thread(self.control_plane.start)
        await asyncio.to_thread(self.emulator.start)
        self.kube = KubeApi(self.control_plane.kubeconfig)
        await self.kube.apply_crd(yaml.safe_load(CRD_PATH.read_text()))
        self.background_per_second = await self.measure_background(5.0)

    async def stop(self) -> None:
        if self.kube is not None:
            await self.kube.close()
        await self.http.aclose()
        self.emulator.stop()
        self.control_plane.stop()

    @property
    def api(self) -> KubeApi:
        assert self.kube is not None
        return self.kube

    async def measure_background(self, seconds: float) -> float:
        """Requests/s the API server serves with no operator running (controller manager)."""
        before, own = await self.api.request_total(), self.api.calls
        await asyncio.sleep(seconds)
        after = await self.api.request_total()
        return max(0.0, (after - before - (self.api.calls - own)) / seconds)

    async def stripe_stats(self) -> dict[str, Counter[str]]:
        """Return the emulator's call counters by account."""
        answer = await self.http.get(f"{self.emulator.base_url}/_emulator/stats")
        answer.raise_for_status()
        return {item["account"]: Counter(item["calls"]) for item in answer.json()["accounts"]}


class Meter:
    """Counts what happens between `start()` and `stop()`: Stripe and Kubernetes calls."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack

    async def start(self) -> None:
        self.began = time.monotonic()
        self.stripe_before = await self.stack.stripe_stats()
        self.kube_before = await self.stack.api.request_total()
        self.own_before = self.stack.api.calls

    async def stop(self, seconds: float | None = None) -> Phase:
        elapsed = time.monotonic() - self.began
        stripe_after = await self.stack.stripe_stats()
        kube_after = await self.stack.api.request_total()
        own = self.stack.api.calls - self.own_before
        background = self.stack.background_per_second * elapsed
        phase = Phase(seconds=elapsed if seconds is None else seconds)
        for account, calls in stripe_after.items():
            delta = calls - self.stripe_before.get(account, Counter())
            if delta.total():
                phase.stripe.update(delta)
                phase.stripe_by_account[account] = delta.total()
        phase.kube = max(0.0, kube_after - self.kube_before - own - background)
        return phase

    async def stripe_total(self) -> int:
        stats = await self.stack.stripe_stats()
        return sum(calls.total() for calls in stats.values())

    async def kube_total(self) -> float:
        """Return the API server's request count (the benchmark's own requests included)."""
        return await self.stack.api.request_total()


class BenchOperator:
    """Our operator (through the stack's launcher) or the no-op baseline, watching one
    namespace; started afresh by each `start`."""

    def __init__(self, kind: str, stack: Stack, namespace: str, options: Options) -> None:
        self.kind = kind
        self.stack = stack
        self.namespace = namespace
        self.drift_interval = options.drift_interval
        self.log_level = options.log_level
        self.profile = options.profile
        self.memory_probe = options.memory_probe
        self.tracemalloc = options.tracemalloc
        self.port = free_port()
        self.process: ManagedProcess | None = None
        self.starts = 0

    def env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": CHILD_PYTHONPATH}
        if self.memory_probe:
            probe = self.stack.workdir / "logs" / f"memory-{self.namespace}-{self.starts}"
            env["PYTHONPATH"] = os.pathsep.join((str(MEMORY_PROBE), CHILD_PYTHONPATH))
            env["BENCH_MEMORY_PROBE"] = str(probe)
        if self.tracemalloc:
            env["PYTHONTRACEMALLOC"] = os.environ.get("BENCH_TRACEMALLOC_FRAMES", "1")
        return env

    def ours(self, name: str) -> OperatorProcess:
        """Return the launcher of our operator with the benchmark's settings."""
        profiler: list[str] = []
        if self.profile:
            out = self.stack.workdir / "logs" / f"{self.namespace}-{self.starts}.prof"
            profiler = [str(VENV_BIN / "python"), "-m", "cProfile", "-o", str(out)]
        return OperatorProcess(
            self.stack.control_plane.kubeconfig,
            self.stack.emulator.base_url,
            self.namespace,
            self.stack.workdir / "logs",
            f"bench-{self.namespace}",
            settings=(
                f"--public-base-url={PUBLIC_BASE_URL}",
                f"--stripe-rate={OPERATOR_RATE:g}",
                f"--drift-interval={self.drift_interval:g}s",
                "--drift-jitter=1s",
                f"--log-level={self.log_level}",
            ),
            metrics_port=self.port,
            env=self.env(),
            wrapper=profiler,
            cwd=REPO_ROOT,
            name=name,
        )

    def noop(self, name: str) -> ManagedProcess:
        """Return the no-op kopf operator, its liveness probe where ours has /healthz."""
        argv = [
            str(VENV_BIN / "kopf"),
            "run",
            "--standalone",
            "--quiet",
            "--namespace",
            self.namespace,
            "--liveness",
            f"http://127.0.0.1:{self.port}/healthz",
            str(NOOP_OPERATOR),
        ]
        env = {
            **self.env(),
            "KUBECONFIG": str(self.stack.control_plane.kubeconfig),
            "STRIPE_API_BASE": self.stack.emulator.base_url,
        }
        log = self.stack.workdir / "logs" / f"{name}.log"
        return ManagedProcess(self.kind, argv, log, env=env, cwd=REPO_ROOT)

    async def start(self) -> None:
        """Start the process and wait until its health endpoint answers 200."""
        self.starts += 1
        name = f"{self.kind}-{self.namespace}-{self.starts}"
        if self.kind == "noop":
            self.process = self.noop(name).start()
            url = f"http://127.0.0.1:{self.port}/healthz"
            await asyncio.to_thread(wait_answering, self.process, url, timeout=START_TIMEOUT)
        else:
            launcher = self.ours(name)
            await asyncio.to_thread(launcher.start, False)
            self.process = launcher.process
            await asyncio.to_thread(launcher.wait_healthy, START_TIMEOUT)

    def rss_kib(self) -> int:
        return 0 if self.process is None else process_tree_rss_kib(self.process.pid)

    def peak_kib(self) -> int:
        return 0 if self.process is None else process_tree_peak_kib(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=30)


def webhook_body(namespace: str, index: int, account: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "StripeWebhook",
        "metadata": {"name": f"shop-{index:04d}", "namespace": namespace},
        "spec": {
            "apiKeySecretRef": {"name": f"stripe-key-{account:03d}", "key": "api-key"},
            "description": f"benchmark webhook {index}",
        },
    }


async def wait_quiet(
    meter: Meter, at_least: float, limit: float, first_call_within: float = 0.0
) -> float | None:
    """Wait `at_least` seconds, then until neither a Stripe call nor a Kubernetes call of the
    operator came for QUIET_SECONDS (an operator whose passes wait for a turn may make only
    Kubernetes calls for a while: Stripe's quiet alone would end the phase early).

    With `first_call_within`, quiet only counts once a first Stripe call came, or once that
    many seconds passed without one: an operator that is slow to start is not yet settled.
    Return the seconds from the call until the last Stripe call seen (None: there was none).
    """
    began = time.monotonic()
    first_total = last_total = await meter.stripe_total()
    last_kube = await meter.kube_total()
    last_change = last_activity = began
    while time.monotonic() - began < limit:
        await asyncio.sleep(POLL)
        total = await meter.stripe_total()
        kube = await meter.kube_total()
        now = time.monotonic()
        if total != last_total:
            last_total, last_change, last_activity = total, now, now
        # More than the poll's own request (if the API server counts it) and a stray one of
        # the controller manager: the operator's passes make several per poll.
        if kube - last_kube > 2:
            last_activity = now
        last_kube = kube
        elapsed = now - began
        started = last_total != first_total or elapsed >= first_call_within
        quiet = now - last_activity >= QUIET_SECONDS
        if started and elapsed >= at_least and quiet:
            break
    return None if last_total == first_total else last_change - began


async def run_round(stack: Stack, kind: str, size: int, options: Options) -> Round:
    """Apply `size` StripeWebhooks for operator `kind`, then restart it, then watch drift."""
    namespace = f"bench-{kind}-{size}-{secrets.token_hex(2)}"
    accounts = max(1, math.ceil(size / PER_ACCOUNT))
    await stack.api.create_namespace(namespace)
    for account in range(accounts):
        key = "sk_test_bench" + secrets.token_hex(16)
        await stack.api.create_secret(namespace, f"stripe-key-{account:03d}", {"api-key": key})
    operator = BenchOperator(kind, stack, namespace, options)
    await operator.start()
    meter = Meter(stack)
    try:
        await meter.start()
        bodies = [webhook_body(namespace, i, i % accounts) for i in range(size)]
        peak = 0
        sampler_done = asyncio.Event()

        async def sample() -> None:
            nonlocal peak
            while not sampler_done.is_set():
                peak = max(peak, operator.rss_kib())
                await asyncio.sleep(0.25)

        sampler = asyncio.create_task(sample())
        await stack.api.create_all(namespace, bodies)
        ready = await stack.api.wait_all_ready(namespace, size, options.ready_timeout)
        create = await meter.stop()
        create.complete = ready
        sampler_done.set()
        await sampler
        create.rss_peak_kib = max(peak, operator.peak_kib())
        result = Round(kind, size, accounts, create)
        print(f"    {kind} N={size}: ready={ready} in {create.seconds:.1f} s", flush=True)
        if not ready:
            return result
        operator.stop()
        await meter.start()
        await operator.start()
        settled = await wait_quiet(
            meter,
            at_least=QUIET_SECONDS + 2,
            limit=options.ready_timeout,
            first_call_within=0.0 if kind == "noop" else FIRST_CALL_WITHIN,
        )
        result.restart = await meter.stop()
        result.restart.settled = settled
        result.restart.rss_peak_kib = operator.peak_kib()
        if kind != "noop":
            await meter.start()
            await asyncio.sleep(options.drift_interval)
            result.drift = await meter.stop()
        return result
    finally:
        operator.stop()


def floor_seconds(phase: Phase, accounts: int) -> float:
    """The least time the Stripe calls made could take within the rate limits."""
    budget = min(OPERATOR_RATE, EMULATOR_RATE * accounts)
    busiest = max(phase.stripe_by_account.values(), default=0)
    return max(phase.stripe_total / budget, busiest / EMULATOR_RATE)


def _per(value: float, size: int, digits: int = 1) -> str:
    return f"{value / size:.{digits}f}" if size else report.DASH


def rounds_table(rounds: Sequence[Round]) -> str:
    rows = []
    for r in rounds:
        create = r.create
        ready = f"{create.seconds:.1f}" if create.complete else f"> {create.seconds:.0f} (timeout)"
        floor = floor_seconds(create, r.accounts) if r.operator != "noop" else 0.0
        rows.append(
            [
                r.operator,
                str(r.size),
                str(r.accounts),
                ready,
                f"{floor:.1f}" if floor else report.DASH,
                (
                    f"{create.seconds / floor:.2f}"
                    if create.complete
                    else f"> {create.seconds / floor:.1f}"
                )
                if floor
                else report.DASH,
                _per(create.stripe_total, r.size),
                _per(create.stripe_writes, r.size),
                _per(create.kube, r.size),
                f"{create.rss_peak_kib / 1024:.0f}",
            ]
        )
    headers = [
        "operator",
        "N",
        "accounts",
        "time to all Ready s",
        "rate-limit floor s",
        "time / floor",
        "Stripe calls/CR",
        "Stripe writes/CR",
        "Kube calls/CR",
        "peak RSS MiB",
    ]
    return report.markdown_table(headers, rows)


def restart_table(rounds: Sequence[Round]) -> str:
    rows = []
    for r in rounds:
        if r.restart is None:
            continue
        drift = r.drift
        lists = drift.stripe_calls("GET /v1/webhook_endpoints") if drift else 0
        rows.append(
            [
                r.operator,
                str(r.size),
                report.DASH if r.restart.settled is None else f"{r.restart.settled:.1f}",
                str(r.restart.stripe_total),
                str(r.restart.stripe_writes),
                _per(r.restart.kube, r.size),
                f"{r.restart.rss_peak_kib / 1024:.0f}",
                f"{lists / r.accounts:.1f}" if drift else report.DASH,
                str(drift.stripe_total - lists) if drift else report.DASH,
                str(drift.stripe_writes) if drift else report.DASH,
            ]
        )
    headers = [
        "operator",
        "N",
        "restart: last Stripe call at s",
        "restart Stripe calls",
        "restart Stripe writes",
        "restart Kube calls/CR",
        "RSS after restart MiB",
        "drift: list calls/account",
        "drift: other Stripe calls",
        "drift: writes",
    ]
    return report.markdown_table(headers, rows)


def rss_fit(rounds: Sequence[Round], kind: str) -> tuple[float, float] | None:
    """Least-squares line (intercept KiB, KiB per CR) through peak RSS against N."""
    points = [(r.size, r.create.rss_peak_kib) for r in rounds if r.operator == kind]
    if len(points) < 2:
        return None
    mean_n = sum(n for n, _ in points) / len(points)
    mean_r = sum(k for _, k in points) / len(points)
    spread = sum((n - mean_n) ** 2 for n, _ in points)
    if spread == 0:
        return None
    slope = sum((n - mean_n) * (k - mean_r) for n, k in points) / spread
    return mean_r - slope * mean_n, slope


def targets_table(rounds: Sequence[Round]) -> str:
    rows = []
    ours = [r for r in rounds if r.operator == "ours"]
    for r in ours:
        floor = floor_seconds(r.create, r.accounts)
        ratio = r.create.seconds / floor if floor and r.create.complete else None
        rows.append(
            [
                f"N={r.size}: time to Ready / rate-limit floor",
                f"<= {TARGET_READY_RATIO:g}",
                f"{ratio:.2f}" if ratio is not None else "not all Ready",
                report.verdict(ratio <= TARGET_READY_RATIO if ratio is not None else False),
            ]
        )
    for r in ours:
        if r.restart is not None:
            rows.append(
                [
                    f"N={r.size}: Stripe writes on restart, all unchanged",
                    "0",
                    str(r.restart.stripe_writes),
                    report.verdict(r.restart.stripe_writes == 0),
                ]
            )
        if r.drift is not None:
            lists = r.drift.stripe_calls("GET /v1/webhook_endpoints")
            others = r.drift.stripe_total - lists
            rows.append(
                [
                    f"N={r.size}: Stripe calls in one drift interval",
                    "1 list per account, nothing else",
                    f"{lists / r.accounts:.2f} lists/account, {others} other",
                    # No list at all means no drift check ran in the interval.
                    report.verdict(0 < lists <= r.accounts and others == 0),
                ]
            )
    largest = max(ours, key=lambda r: r.size, default=None)
    if largest is not None:
        mib = largest.create.rss_peak_kib / 1024
        rows.append(
            [
                f"peak RSS at N={largest.size}",
                f"<= {TARGET_RSS_MIB:g} MiB",
                f"{mib:.0f} MiB",
                report.verdict(mib <= TARGET_RSS_MIB),
            ]
        )
        fit = rss_fit(rounds, "ours")
        if fit is not None and largest.size < 1000:
            at_1000 = (fit[0] + fit[1] * 1000) / 1024
            rows.append(
                [
                    "peak RSS at N=1,000 (extrapolated)",
                    f"<= {TARGET_RSS_MIB:g} MiB",
                    f"{at_1000:.0f} MiB ({fit[1]:.0f} KiB per CR)",
                    report.verdict(at_1000 <= TARGET_RSS_MIB),
                ]
            )
    return report.markdown_table(["target", "wanted", "measured", "verdict"], rows)


def rss_note(rounds: Sequence[Round]) -> list[str]:
    """Say how peak RSS at 1,000 was found: measured, or extrapolated from smaller N."""
    if any(r.operator == "ours" and r.size >= 1000 for r in rounds):
        return []
    return [
        "Peak RSS at 1,000 is extrapolated with a least-squares line through the peak RSS "
        "measured at each N.",
        "",
    ]


def document(rounds: Sequence[Round], options: Options, notes: Sequence[str], stack: Stack) -> str:
    facts = report.machine_facts(options.load_at_start)
    versions = report.package_versions(["kopf", "kubernetes", "stripe", "httpx", "aiohttp"])
    versions.append(
        (
            "kube-apiserver",
            report.tool_version([str(REPO_ROOT / ".tools/bin/kube-apiserver"), "--version"]),
        )
    )
    parts = [
        "## Operator (`make bench-operator`)",
        "",
        f"Local stack: kube-apiserver and etcd, the Stripe emulator limiting each account to "
        f"{EMULATOR_RATE:g} requests/s. Each N is applied at once (16 concurrent creates) "
        f"across ceil(N / {PER_ACCOUNT}) accounts, one API-key Secret each; the operator runs "
        f"with `--stripe-rate {OPERATOR_RATE:g}`, no receiver handshake. Kubernetes calls are "
        "`apiserver_request_total` deltas less the benchmark's own requests and the "
        f"background rate measured idle ({stack.background_per_second:.1f}/s, the controller "
        "manager). The rate-limit floor is the phase's Stripe calls over the rate budget "
        "(the operator's, or the emulator's per account, whichever binds). Restart: the "
        "operator stopped and started again with every object unchanged, counted until "
        f"neither a Stripe call nor a Kubernetes call came for {QUIET_SECONDS:g} s. Drift: one "
        f"`--drift-interval` ({options.drift_interval:g} s) after that.",
        "",
        rounds_table(rounds),
        "",
        restart_table(rounds),
        "",
        "### Targets",
        "",
        targets_table(rounds),
        "",
        *rss_note(rounds),
        *report.closing_sections(facts + versions, notes),
    ]
    return "\n".join(parts)


def operator_installed() -> bool:
    return (
        OPERATOR_SCRIPT.exists()
        and (REPO_ROOT / "operator" / "stripe_webhook_operator" / "cli.py").exists()
    )


def parse_options(argv: Sequence[str] | None) -> Options:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N=5 only, short drift window")
    parser.add_argument("--sizes", default=None, help="comma-separated N (default 100,500,1000)")
    parser.add_argument(
        "--operators", default="noop,ours", help="which operators: noop, ours, or both"
    )
    parser.add_argument("--drift-interval", type=float, default=None, help="seconds")
    parser.add_argument(
        "--ready-timeout", type=float, default=600.0, help="seconds to wait for all Ready"
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep the stack's files and logs here"
    )
    parser.add_argument(
        "--log-level", default="WARNING", help="the operator's `--log-level` (its log: workdir)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run our operator under cProfile (a .prof file per start in the workdir's logs)",
    )
    parser.add_argument(
        "--memory-probe",
        action="store_true",
        help="sample each operator's memory every second (benchmarks/memory_probe: a JSON-lines "
        "file per start in the workdir's logs)",
    )
    parser.add_argument(
        "--tracemalloc",
        action="store_true",
        help="with --memory-probe: trace Python allocations too, and write the largest sites "
        "at each new high",
    )
    report.add_output_option(parser)
    args = parser.parse_args(argv)
    sizes = args.sizes or ("5" if args.quick else "100,500,1000")
    return Options(
        sizes=[int(n) for n in sizes.split(",") if n],
        operators=[name for name in args.operators.split(",") if name],
        drift_interval=args.drift_interval or (10.0 if args.quick else 30.0),
        ready_timeout=args.ready_timeout,
        output=report.output_path(args.output),
        load_at_start=report.load_text(),
        workdir=args.workdir,
        log_level=args.log_level,
        profile=args.profile,
        memory_probe=args.memory_probe or args.tracemalloc,
        tracemalloc=args.tracemalloc,
    )


async def run(options: Options, workdir: Path) -> tuple[list[Round], list[str], Stack]:
    notes: list[str] = []
    kinds = list(options.operators)
    if "ours" in kinds and not operator_installed():
        kinds.remove("ours")
        notes.append("`stripe-webhook-operator` is not installed: only the baseline was measured.")
    stack = Stack(workdir)
    rounds: list[Round] = []
    try:
        await stack.start()
        for size in options.sizes:
            for kind in kinds:
                print(f"[N={size}] {kind}", flush=True)
                rounds.append(await run_round(stack, kind, size, options))
    finally:
        await stack.stop()
    return rounds, notes, stack


def main(argv: Sequence[str] | None = None) -> list[Round]:
    """Run the operator benchmark, print its tables, and write its docs section."""
    options = parse_options(argv)
    if options.workdir is not None:
        options.workdir.mkdir(parents=True, exist_ok=True)
        rounds, notes, stack = asyncio.run(run(options, options.workdir))
    else:
        with tempfile.TemporaryDirectory(prefix="bench-operator-") as tmp:
            rounds, notes, stack = asyncio.run(run(options, Path(tmp)))
    section = document(rounds, options, notes, stack)
    report.publish(SECTION, section, options.output)
    return rounds


if __name__ == "__main__":
    main()
