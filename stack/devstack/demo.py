"""`make demo`: the whole journey of a StripeWebhook, on a real local node, in a few minutes.

It builds the images (what changed only), starts a single-node Kubernetes cluster in a private
network namespace (devstack.node) with the Stripe emulator inside it, installs the chart with
`helm install --wait` (the operator and the receiver run as Pods of the project's image; the
receiver reads the kubelet's own Secret volume), runs `helm test`, applies `examples/`, waits
for `Ready`, registers a receipt, updates a subscription (the emulator delivers the event
through the receiver's Service), reads the subscriber back, rotates the signing secret and shows
that the next event still verifies. It prints how long a new webhook and a rotation waited for
the secret to reach the receiver Pod. Each step prints the command a user would type for it;
the last lines are a `SUMMARY` that tests read. Everything started is stopped at the end (every
process by PID, the node's Pods by its cgroup tree), on failure and on Ctrl-C alike.

With `E2E_KUBECONFIG` and `STRIPE_TEST_API_KEY` set, the same journey runs against that cluster
and Stripe test mode: the chart is installed from `DEMO_IMAGE` (a registry image of the
project), and Stripe must reach the receiver Service, so `DEMO_PUBLIC_URL` must name the public
https URL that leads to it (an Ingress, or a tunnel to the demo's port-forward of the Service on
127.0.0.1:`DEMO_RECEIVER_PORT`, default 8000).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

import httpx
import stripe
import yaml

from devstack.cluster.kubectl import Kubectl
from devstack.image.images import build as build_images
from devstack.node.cluster import NodeCluster
from devstack.node.forward import Forwarder
from devstack.processes import (
    REPO_ROOT,
    TOOLS_BIN,
    ManagedProcess,
    StackError,
    free_port,
    pid_running,
    tool,
)
from devstack.release import ChartRelease, image_values
from devstack.stripe_emulator.launcher import EmulatorProcess

T = TypeVar("T")
VENV_BIN = REPO_ROOT / ".venv" / "bin"
EXAMPLE_WEBHOOK = "examples/stripewebhook.yaml"
EXAMPLE_API_KEY = "examples/api-key-secret.yaml"
CHART = "charts/stripe-webhook-operator"
RELEASE = "stripe-webhook-operator"
WEBHOOK_NAME = "my-app"
LOCAL_NAMESPACE = "billing"
RECEIVER_NAMESPACE = "stripe-system"
SUBSCRIBER = "demo-user"
# The example's entitlement map grants `premium` for this product id.
PRODUCT_ID = "prod_premium"
STRIPE_API = "https://api.stripe.com"
READY_TIMEOUT = 90.0
EVENT_TIMEOUT = 60.0
ROTATION_TIMEOUT = "3m"
POLL_INTERVAL = 0.2
MIB = 1024 * 1024


class Stoppable(Protocol):
    def stop(self) -> None: ...


class DemoError(RuntimeError):
    """A step of the demo did not reach its goal; the message says which and where to look."""


# --- output ------------------------------------------------------------------------------


def step(title: str, *commands: str) -> None:
    """Print a step and the commands a user would type for it."""
    print(f"\n==> {title}", flush=True)
    for command in commands:
        print(f"    $ {command}", flush=True)


def note(text: str) -> None:
    print(f"    {text}", flush=True)


def poll(what: str, check: Callable[[], T | None], timeout: float, show: bool = True) -> T:
    """Return the first truthy `check()`; print a dot a second while waiting, bounded in time."""
    began = time.monotonic()
    last_dot = began
    for _ in range(int(timeout / POLL_INTERVAL) + 2):
        value = check()
        if value:
            if show and time.monotonic() - began > 1:
                print(f" {time.monotonic() - began:.0f} s", flush=True)
            return value
        now = time.monotonic()
        if now - began > timeout:
            break
        if show and now - last_dot >= 1:
            if last_dot == began:
                print(f"    waiting for {what} ", end="", flush=True)
            print(".", end="", flush=True)
            last_dot = now
        time.sleep(POLL_INTERVAL)
    print(flush=True)
    raise DemoError(f"{what} did not happen within {timeout:.0f} s.")


# --- the environment the journey runs in ----------------------------------------------------


@dataclass
class Target:
    """Where the journey runs: the local stack, or a real cluster and Stripe test mode."""

    real: bool
    workdir: Path
    kubeconfig: Path = Path()
    stripe_base: str = STRIPE_API
    api_key: str = ""
    namespace: str = LOCAL_NAMESPACE
    receiver_port: int = field(default_factory=free_port)
    public_url: str = ""
    # The Stripe API as the operator's Pod reaches it (inside the node, on the local stack).
    stripe_for_pods: str = STRIPE_API
    image: list[str] = field(default_factory=list)
    receiver_url: str = ""
    applied: bool = False
    node: NodeCluster | None = None
    timings: dict[str, float] = field(default_factory=dict)
    cleanup: list[Stoppable] = field(default_factory=list)

    def kubectl(self) -> Kubectl:
        return Kubectl(self.kubeconfig, self.workdir / "kube-cache")

    def stripe(self) -> stripe.StripeClient:
        return stripe.StripeClient(self.api_key, base_addresses={"api": self.stripe_base})

    @property
    def release_namespace(self) -> str:
        """Where the chart goes: its usual namespace here, the demo's own on a real cluster."""
        return self.namespace if self.real else RECEIVER_NAMESPACE

    def stop_all(self) -> list[int]:
        """Stop everything started, newest first, each by PID; return the PIDs still alive."""
        pids = [pid for component in self.cleanup for pid in component_pids(component)]
        while self.cleanup:
            component = self.cleanup.pop()
            with contextlib.suppress(Exception):
                component.stop()
        return [pid for pid in pids if pid_running(pid)]


def component_pids(component: Stoppable) -> list[int]:
    """The PIDs a started component leads (none if it never got as far as a process)."""
    if isinstance(component, NodeCluster):
        return component.pids()
    if isinstance(component, ManagedProcess | EmulatorProcess | Forwarder):
        with contextlib.suppress(StackError, RuntimeError):
            return [component.pid]
    return []


def real_target(workdir: Path) -> Target:
    """The real services named by the environment, or DemoError saying what is missing."""
    public_url = os.environ.get("DEMO_PUBLIC_URL", "").rstrip("/")
    port = int(os.environ.get("DEMO_RECEIVER_PORT", "8000"))
    if not public_url.startswith("https://"):
        raise DemoError(
            "With E2E_KUBECONFIG and STRIPE_TEST_API_KEY set, Stripe must reach the receiver: "
            "set DEMO_PUBLIC_URL to a public https URL that leads to the receiver Service (an "
            f"Ingress, or a tunnel to 127.0.0.1:{port}, where the demo port-forwards the Service; "
            "DEMO_RECEIVER_PORT)."
        )
    kubeconfig = Path(os.environ["E2E_KUBECONFIG"])
    image = os.environ.get("DEMO_IMAGE", "")
    repository, _, tag = (
        image.rpartition(":") if ":" in image.rsplit("/", 1)[-1] else (image, "", "")
    )
    return Target(
        real=True,
        workdir=workdir,
        kubeconfig=kubeconfig,
        api_key=os.environ["STRIPE_TEST_API_KEY"],
        namespace=f"stripe-demo-{secrets.token_hex(3)}",
        receiver_port=port,
        public_url=public_url,
        image=[f"image.repository={repository}", *([f"image.tag={tag}"] if tag else [])]
        if repository
        else [],
    )


def build_node_images(target: Target) -> None:
    """Build the images whose inputs changed: the Debian base, the project's, the node's."""
    step(
        "Build the images: a Debian base (mmdebstrap), the project's Dockerfile (buildah), "
        "no registry",
        "make image",
    )
    began = time.monotonic()
    for item in build_images(target.workdir / "logs" / "image-build.log"):
        how = f"built in {item.seconds:.0f} s" if item.rebuilt else "unchanged"
        note(f"{item.archive.name}: {item.archive.size_bytes() / MIB:.0f} MiB, {how}")
    target.timings["images"] = time.monotonic() - began


def start_local_stack(target: Target) -> None:
    """Start the node's cluster and the Stripe emulator inside it; a fresh emulator key is a
    new account."""
    build_node_images(target)
    step(
        "Start the local cluster: a control plane and one node (containerd, kubelet, "
        "kube-proxy, CoreDNS, local volumes) in a private network namespace",
        "make dev-up",
    )
    began = time.monotonic()
    node = NodeCluster(target.workdir / "node")
    target.cleanup.append(node)
    node.start()
    target.node = node
    target.timings["cluster"] = time.monotonic() - began
    note(f"node Ready; API server reachable from this shell at {node.server}")
    note(
        "started in "
        + ", ".join(f"{what} {seconds:.0f} s" for what, seconds in node.start_seconds.items())
    )
    # Short retries: an event refused before its receipt exists comes back within seconds.
    emulator = node.start_emulator(target.workdir / "stripe-emulator", retry_schedule=(1, 2, 4, 8))
    target.cleanup.append(emulator)
    note(
        f"Stripe emulator inside the node at {emulator.inside_url} (from here: {emulator.base_url})"
    )
    target.kubeconfig = node.kubeconfig
    target.stripe_base = emulator.base_url
    target.stripe_for_pods = emulator.inside_url
    target.api_key = "sk_test_demo" + secrets.token_hex(16)
    target.image = image_values()


# --- steps ---------------------------------------------------------------------------------


def child_env(target: Target) -> dict[str, str]:
    path = os.pathsep.join([str(TOOLS_BIN), str(VENV_BIN), os.environ.get("PATH", "")])
    return dict(
        os.environ,
        PATH=path,
        KUBECONFIG=str(target.kubeconfig),
        STRIPE_API_BASE=target.stripe_base,
    )


def chart_release(target: Target) -> ChartRelease:
    release = ChartRelease(
        target.kubectl(),
        target.release_namespace,
        stripe_api_base=target.stripe_for_pods,
        name=RELEASE,
    )
    release.sets = list(target.image)
    release.public_url = target.public_url if target.real else ""
    return release


def install_chart(target: Target) -> ChartRelease:
    """`helm install --wait` (every Pod Ready), then `helm test`; reach the receiver Service."""
    release = chart_release(target)
    sets = " ".join(f"--set {item}" for item in target.image)
    step(
        "Install the chart and wait until every Pod is Ready",
        f"helm install {RELEASE} {CHART} -n {release.namespace} --create-namespace {sets} "
        f"--set stripe.apiBase={target.stripe_for_pods} "
        f"--set publicBaseUrl={release.public_base_url} --wait",
    )
    began = time.monotonic()
    release.install()
    target.timings["helm_install"] = time.monotonic() - began
    pods = target.kubectl()("get", "pods", "-n", release.namespace, "-o", "wide").stdout
    print(pods.rstrip(), flush=True)
    step("Run the chart's own test Pod", f"helm test {RELEASE} -n {release.namespace}")
    for line in release.test().stdout.splitlines():
        if line.startswith(("Phase:", "TEST SUITE", "http")):
            note(line.strip())
    target.receiver_url = receiver_url(target, release)
    note(f"receiver Service reachable from this shell at {target.receiver_url}")
    return release


def receiver_url(target: Target, release: ChartRelease) -> str:
    """A URL of this shell that reaches the receiver Service (forwarded into the node on the
    local stack; `kubectl port-forward` on a real cluster)."""
    service = release.receiver_service
    if target.node is not None:
        forwarder = target.node.expose(release.service_ip(service), 8000)
        return forwarder.url()
    forward = ManagedProcess(
        "port-forward",
        [
            str(tool("kubectl")),
            "port-forward",
            f"service/{service}",
            f"{target.receiver_port}:8000",
            "-n",
            release.namespace,
        ],
        target.workdir / "port-forward.log",
        env=child_env(target),
    )
    target.cleanup.append(forward)
    forward.start()
    url = f"http://127.0.0.1:{target.receiver_port}"
    poll("the receiver's port-forward", lambda: _healthy(forward, f"{url}/healthz"), 30)
    return url


def _healthy(process: ManagedProcess, url: str) -> bool:
    process.check_alive()
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def apply_examples(target: Target) -> None:
    """Apply the API-key Secret (with this run's key) and the example StripeWebhook."""
    kubectl = target.kubectl()
    ns = target.namespace
    step(
        f"Apply the API-key Secret and the StripeWebhook in namespace '{ns}'",
        f"kubectl create namespace {ns}",
        f"kubectl apply -n {ns} -f {EXAMPLE_API_KEY}    # with your sk_test_ key in `api-key`",
        f"kubectl apply -n {ns} -f {EXAMPLE_WEBHOOK}",
    )
    kubectl("create", "namespace", ns, check=False)
    target.applied = True
    secret = yaml.safe_load((REPO_ROOT / EXAMPLE_API_KEY).read_text())
    secret["stringData"]["api-key"] = target.api_key
    # On stdin, never on a command line: the key must not show in `ps`.
    kubectl("apply", "-n", ns, "-f", "-", input=json.dumps(secret))
    kubectl("apply", "-n", ns, "-f", str(REPO_ROOT / EXAMPLE_WEBHOOK))


def webhook_status(kubectl: Kubectl, namespace: str) -> dict[str, Any]:
    raw = kubectl("get", "stripewebhook", WEBHOOK_NAME, "-n", namespace, "-o", "json").stdout
    status: dict[str, Any] = json.loads(raw).get("status") or {}
    return status


def conditions(status: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["type"]: item for item in status.get("conditions") or []}


def wait_ready(target: Target) -> dict[str, Any]:
    """Wait for Ready=True, printing each change of the conditions on the way."""
    kubectl = target.kubectl()
    step(
        "Wait until the StripeWebhook is Ready",
        f"kubectl wait -n {target.namespace} --for=condition=Ready stripewebhook/{WEBHOOK_NAME}",
    )
    shown: list[str] = []

    def check() -> dict[str, Any] | None:
        status = webhook_status(kubectl, target.namespace)
        found = conditions(status)
        line = ", ".join(
            f"{kind}={item.get('status')} ({item.get('reason')})" for kind, item in found.items()
        )
        if line and line not in shown:
            shown.append(line)
            note(line)
        ready = found.get("Ready", {}).get("status") == "True"
        return status if ready else None

    status = poll("Ready", check, READY_TIMEOUT, show=False)
    note(f"endpoint {status.get('endpointId')} -> {status.get('url')}")
    print(kubectl("get", "stripewebhook", "-n", target.namespace).stdout.rstrip(), flush=True)
    return status


def receipts_api_key(target: Target, secret_name: str) -> str:
    """Read the app's receipts API key from the webhook's Secret, as the app would."""
    step(
        "Read the app's receipts API key from the webhook's Secret",
        f"kubectl get secret -n {target.namespace} {secret_name} "
        "-o jsonpath='{.data.receipts-api-key}' | base64 -d",
    )
    encoded = target.kubectl()(
        "get",
        "secret",
        "-n",
        target.namespace,
        secret_name,
        "-o",
        "jsonpath={.data.receipts-api-key}",
    ).stdout
    note("(the key is kept out of this output)")
    return base64.b64decode(encoded).decode()


def create_subscription(target: Target) -> str:
    """Create (or reuse) the premium product, a price, a customer and a subscription."""
    step(
        "Create a customer subscribed to the premium product (Stripe API)",
        f'curl -u "$STRIPE_API_KEY:" {target.stripe_base}/v1/products '
        f"-d id={PRODUCT_ID} -d name=Premium    # once",
        f'curl -u "$STRIPE_API_KEY:" {target.stripe_base}/v1/prices ...   '
        "# then /v1/customers and /v1/subscriptions",
    )
    client = target.stripe()
    try:
        client.v1.products.retrieve(PRODUCT_ID)
    except stripe.InvalidRequestError:
        client.v1.products.create(params={"id": PRODUCT_ID, "name": "Premium"})
    price = client.v1.prices.create(
        params={
            "product": PRODUCT_ID,
            "currency": "usd",
            "unit_amount": 999,
            "recurring": {"interval": "month"},
        }
    )
    customer = client.v1.customers.create(
        params={
            "email": "demo@example.test",
            "payment_method": "pm_card_visa",
            "invoice_settings": {"default_payment_method": "pm_card_visa"},
        }
    )
    subscription = client.v1.subscriptions.create(
        params={"customer": customer.id, "items": [{"price": price.id}]}
    )
    note(f"subscription {subscription.id} ({subscription.status}) for customer {customer.id}")
    return str(subscription.id)


def register_receipt(target: Target, key: str, subscription_id: str) -> None:
    step(
        f"Register the subscription as a receipt of app user '{SUBSCRIBER}'",
        f"curl -X POST {target.receiver_url}/v1/receipts -H 'Authorization: Bearer $KEY' "
        f'-d \'{{"app_user_id": "{SUBSCRIBER}", "fetch_token": "{subscription_id}"}}\'',
    )
    answer = httpx.post(
        f"{target.receiver_url}/v1/receipts",
        headers={"Authorization": f"Bearer {key}"},
        json={"app_user_id": SUBSCRIBER, "fetch_token": subscription_id},
        timeout=10,
    )
    if answer.status_code not in (200, 201):
        raise DemoError(f"POST /v1/receipts answered {answer.status_code}: {answer.text}")
    note(f"{answer.status_code}: receipt registered")


def subscriber_state(target: Target, key: str) -> dict[str, Any] | None:
    """The premium subscription as GET /v1/subscribers shows it, plus the entitlements."""
    answer = httpx.get(
        f"{target.receiver_url}/v1/subscribers/{SUBSCRIBER}",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    answer.raise_for_status()
    subscriber = answer.json()["subscriber"]
    subscription = subscriber["subscriptions"].get(PRODUCT_ID)
    if subscription is None:
        return None
    return {
        "status": subscription["status"],
        "cancel_at_period_end": subscription["cancel_at_period_end"],
        "expires_date": subscription["expires_date"],
        "entitlements": sorted(subscriber["entitlements"]),
    }


def update_and_show(
    target: Target, key: str, subscription_id: str, cancel_at_period_end: bool
) -> dict[str, Any]:
    """Update the subscription in Stripe and wait until the receiver shows the change."""
    value = "true" if cancel_at_period_end else "false"
    step(
        f"Update the subscription (cancel_at_period_end={value}); Stripe sends "
        "customer.subscription.updated",
        f'curl -u "$STRIPE_API_KEY:" {target.stripe_base}/v1/subscriptions/{subscription_id} '
        f"-d cancel_at_period_end={value}",
    )
    target.stripe().v1.subscriptions.update(
        subscription_id, params={"cancel_at_period_end": cancel_at_period_end}
    )

    def applied() -> dict[str, Any] | None:
        state = subscriber_state(target, key)
        return state if state and state["cancel_at_period_end"] is cancel_at_period_end else None

    state = poll("the event to reach the subscriber", applied, EVENT_TIMEOUT)
    step(
        "Read the subscriber's state from the receiver",
        f"curl {target.receiver_url}/v1/subscribers/{SUBSCRIBER} -H 'Authorization: Bearer $KEY'",
    )
    note(json.dumps(state))
    return state


def rotate(target: Target) -> None:
    """Rotate with the kubectl plugin and stream its progress lines."""
    command = ["kubectl", "stripe", "rotate", WEBHOOK_NAME, "-n", target.namespace, "--wait"]
    step("Rotate the signing secret", " ".join(command))
    env = dict(child_env(target), KUBECACHEDIR=str(target.workdir / "kube-cache"))
    argv = [str(tool("kubectl")), *command[1:], f"--timeout={ROTATION_TIMEOUT}"]
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as process:
        assert process.stdout is not None
        try:
            for line in process.stdout:
                note(line.rstrip())
        except BaseException:
            # Ctrl-C or a failure: the plugin must not outlive the demo, nor keep it waiting.
            process.kill()
            raise
    if process.returncode != 0:
        raise DemoError(f"`kubectl stripe rotate` exited {process.returncode}.")


def receiver_counts(target: Target, metric: str, label: str) -> dict[str, int]:
    """A counter of the receiver's /metrics, summed by one label."""
    text = httpx.get(f"{target.receiver_url}/metrics", timeout=10).text
    counts: dict[str, int] = {}
    for line in text.splitlines():
        if line.startswith(f"{metric}{{"):
            labels, _, value = line.rpartition(" ")
            key = labels.split(f'{label}="', 1)[1].split('"', 1)[0]
            counts[key] = counts.get(key, 0) + int(float(value))
    return counts


def both_copies_verified(target: Target) -> dict[str, int]:
    """Wait until the receiver has verified the last event from both endpoints of the overlap:
    the new endpoint's copy and the old one's, one applied and the other a duplicate."""
    step(
        "Check that the receiver verified the event from both endpoints (one copy is a duplicate)",
        f"curl -s {target.receiver_url}/metrics | grep stripe_webhook_receiver_deliveries_total",
    )
    deliveries = "stripe_webhook_receiver_deliveries_total"

    def both() -> dict[str, int] | None:
        counts = receiver_counts(target, deliveries, "outcome")
        return counts if counts.get("duplicate", 0) >= 1 else None

    counts = poll("the second copy of the event", both, EVENT_TIMEOUT)
    failures = receiver_counts(
        target, "stripe_webhook_receiver_verification_failures_total", "reason"
    )
    counts["verification_failures"] = sum(failures.values())
    note(
        f"applied {counts.get('applied', 0)}, duplicate {counts.get('duplicate', 0)}, "
        f"verification failures {counts['verification_failures']}"
    )
    return counts


def delete_webhook(target: Target) -> None:
    """On a real cluster, delete what the demo made (the operator deletes the endpoint)."""
    step(
        "Delete the StripeWebhook (the operator deletes its Stripe endpoint)",
        f"kubectl delete -n {target.namespace} -f {EXAMPLE_WEBHOOK}",
    )
    kubectl = target.kubectl()
    kubectl("delete", "-n", target.namespace, "-f", str(REPO_ROOT / EXAMPLE_WEBHOOK), timeout=120)
    kubectl("delete", "namespace", target.namespace, "--wait=false")


# --- the journey ---------------------------------------------------------------------------


def journey(target: Target) -> list[str]:
    """Run every step; return the summary lines."""
    kubectl = target.kubectl()
    install_chart(target)
    began = time.monotonic()
    apply_examples(target)
    before = wait_ready(target)
    target.timings["ready"] = time.monotonic() - began
    note(
        f"applied -> Ready in {target.timings['ready']:.1f} s (the secret reached the receiver Pod)"
    )
    key = receipts_api_key(
        target, str(before.get("secretName") or f"{WEBHOOK_NAME}-stripe-webhook")
    )
    subscription_id = create_subscription(target)
    register_receipt(target, key, subscription_id)
    first = update_and_show(target, key, subscription_id, cancel_at_period_end=True)
    began = time.monotonic()
    rotate(target)
    target.timings["rotation"] = time.monotonic() - began
    note(f"rotation requested -> new endpoint enabled in {target.timings['rotation']:.1f} s")
    after = webhook_status(kubectl, target.namespace)
    note(
        f"endpoint {before.get('endpointId')} (v{before.get('secretVersion')}) -> "
        f"{after.get('endpointId')} (v{after.get('secretVersion')}); the old one stays "
        f"until {after.get('previousSecretExpiresAt')}"
    )
    second = update_and_show(target, key, subscription_id, cancel_at_period_end=False)
    deliveries = both_copies_verified(target)
    return [
        f"SUMMARY webhook={target.namespace}/{WEBHOOK_NAME} endpoint={after.get('endpointId')} "
        f"previous_endpoint={before.get('endpointId')} ready=True",
        f"SUMMARY subscriber={SUBSCRIBER} subscription={subscription_id} "
        f"events_applied={deliveries.get('applied', 0)} "
        f"duplicates={deliveries.get('duplicate', 0)} "
        f"cancel_at_period_end={first['cancel_at_period_end']}->{second['cancel_at_period_end']} "
        f"entitlements={','.join(second['entitlements']) or '-'}",
        f"SUMMARY rotation=v{before.get('secretVersion')}->v{after.get('secretVersion')} "
        f"verified_after_rotation={second['cancel_at_period_end'] is False} "
        f"verification_failures={deliveries['verification_failures']}",
        f"SUMMARY propagation_ready_seconds={target.timings['ready']:.1f} "
        f"propagation_rotation_seconds={target.timings['rotation']:.1f} "
        + " ".join(
            f"{what}_seconds={seconds:.0f}"
            for what, seconds in target.timings.items()
            if what in ("images", "cluster", "helm_install")
        ),
    ]


@contextlib.contextmanager
def workspace() -> Iterator[Path]:
    """A temporary folder for logs and state, deleted at the end unless DEMO_KEEP is set."""
    path = Path(tempfile.mkdtemp(prefix="stripe-webhook-demo-"))
    try:
        yield path
    finally:
        if os.environ.get("DEMO_KEEP"):
            print(f"Logs kept in {path}", flush=True)
        else:
            shutil.rmtree(path, ignore_errors=True)


def interrupt(signum: int, frame: object) -> None:
    """Treat SIGTERM like Ctrl-C, so that `finally` stops every process either way."""
    raise KeyboardInterrupt


def main() -> int:
    """Run the demo; return 0 when every step reached its goal."""
    signal.signal(signal.SIGTERM, interrupt)
    real = bool(os.environ.get("E2E_KUBECONFIG") and os.environ.get("STRIPE_TEST_API_KEY"))
    began = time.monotonic()
    with workspace() as workdir:
        # Inherited by every child, so a leftover process can be traced back to this run.
        os.environ["STRIPE_WEBHOOK_DEMO_DIR"] = str(workdir)
        target = Target(real=False, workdir=workdir)
        try:
            if real:
                target = real_target(workdir)
                step("Use the cluster of E2E_KUBECONFIG and Stripe test mode")
                note(f"Stripe sends events to {target.public_url}, which must lead to the receiver")
            else:
                start_local_stack(target)
            summary = journey(target)
        except (
            DemoError,
            StackError,
            subprocess.CalledProcessError,
            httpx.HTTPError,
            stripe.StripeError,
        ) as exc:
            print(f"\nThe demo failed: {exc}", file=sys.stderr, flush=True)
            print("Set DEMO_KEEP=1 to keep the logs of every process.", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("\nInterrupted; stopping everything.", file=sys.stderr, flush=True)
            return 130
        finally:
            if target.real and target.applied:
                # The operator still runs, so the Stripe endpoint goes with the resource.
                try:
                    delete_webhook(target)
                except (StackError, subprocess.SubprocessError) as exc:
                    print(f"    cleanup failed: {exc}", file=sys.stderr, flush=True)
            print("\n==> Stop every process the demo started", flush=True)
            left: list[object] = list(target.stop_all())
            if left:
                print(f"    still running: PIDs {left}; stop them with `kill PID`", flush=True)
            if target.node is not None and (remains := target.node.leftovers()):
                print(f"    left behind: {', '.join(remains)}", flush=True)
                left += remains
        print("", flush=True)
        for line in summary:
            print(line, flush=True)
        took = time.monotonic() - began
        print(f"SUMMARY took={took:.0f}s leftover_processes={len(left)}", flush=True)
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
