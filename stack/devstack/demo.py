"""`make demo`: the whole journey of a StripeWebhook, on the local stack, in about a minute.

It starts a Kubernetes control plane and the Stripe emulator, installs the chart's CRD, runs
the operator and the receiver as local processes (there is no kubelet: a projector mirrors the
receiver's Secret into its `--secrets-dir`), applies `examples/`, waits for `Ready`, registers a
receipt, updates a subscription, reads the subscriber back, rotates the signing secret and shows
that the next event still verifies. Each step prints the command a user would type for it; the
last lines are a `SUMMARY` that tests read. Every process started is stopped by PID at the end,
on failure and on Ctrl-C alike.

With `E2E_KUBECONFIG` and `STRIPE_TEST_API_KEY` set, the same journey runs against that cluster
and Stripe test mode; Stripe must then reach the receiver, so `DEMO_PUBLIC_URL` must name a
public URL that forwards to the receiver's port (`DEMO_RECEIVER_PORT`, default 8000).
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

from devstack.cluster.control_plane import ControlPlane
from devstack.cluster.kubectl import Kubectl
from devstack.node.projector import SecretProjector
from devstack.processes import (
    REPO_ROOT,
    TOOLS_BIN,
    ManagedProcess,
    StackError,
    free_port,
    pid_running,
    tool,
)
from devstack.stripe_emulator.launcher import EmulatorProcess

T = TypeVar("T")
VENV_BIN = REPO_ROOT / ".venv" / "bin"
EXAMPLE_WEBHOOK = "examples/stripewebhook.yaml"
EXAMPLE_API_KEY = "examples/api-key-secret.yaml"
CHART = "charts/stripe-webhook-operator"
CRD_TEMPLATE = "templates/crd-stripewebhooks.yaml"
WEBHOOK_NAME = "my-app"
LOCAL_NAMESPACE = "billing"
RECEIVER_NAMESPACE = "stripe-system"
RECEIVER_SECRET = "stripe-webhook-receiver-secrets"
SUBSCRIBER = "demo-user"
# The example's entitlement map grants `premium` for this product id.
PRODUCT_ID = "prod_premium"
STRIPE_API = "https://api.stripe.com"
READY_TIMEOUT = 90.0
EVENT_TIMEOUT = 60.0
ROTATION_TIMEOUT = "3m"
POLL_INTERVAL = 0.2


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
    applied: bool = False
    cleanup: list[Stoppable] = field(default_factory=list)

    @property
    def receiver_url(self) -> str:
        return f"http://127.0.0.1:{self.receiver_port}"

    def kubectl(self) -> Kubectl:
        return Kubectl(self.kubeconfig, self.workdir / "kube-cache")

    def stripe(self) -> stripe.StripeClient:
        return stripe.StripeClient(self.api_key, base_addresses={"api": self.stripe_base})

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
    if isinstance(component, ControlPlane):
        return component.pids()
    if isinstance(component, ManagedProcess | EmulatorProcess | SecretProjector):
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
            f"set DEMO_PUBLIC_URL to a public https URL that forwards to 127.0.0.1:{port} "
            "(DEMO_RECEIVER_PORT), e.g. a tunnel."
        )
    kubeconfig = Path(os.environ["E2E_KUBECONFIG"])
    return Target(
        real=True,
        workdir=workdir,
        kubeconfig=kubeconfig,
        api_key=os.environ["STRIPE_TEST_API_KEY"],
        namespace=f"stripe-demo-{secrets.token_hex(3)}",
        receiver_port=port,
        public_url=public_url,
    )


def start_local_stack(target: Target) -> None:
    """Start the control plane and the Stripe emulator; a fresh emulator key is a new account."""
    step("Start the local stack: Kubernetes control plane and Stripe emulator", "make dev-up")
    began = time.monotonic()
    plane = ControlPlane(target.workdir / "kube")
    target.cleanup.append(plane)
    plane.start()
    note(f"control plane ready at {plane.server} in {time.monotonic() - began:.0f} s")
    # Short retries: an event refused before its receipt exists comes back within seconds.
    emulator = EmulatorProcess(target.workdir / "stripe-emulator", retry_schedule=(1, 2, 4, 8))
    target.cleanup.append(emulator)
    emulator.start()
    note(f"Stripe emulator at {emulator.base_url}")
    target.kubeconfig = plane.kubeconfig
    target.stripe_base = emulator.base_url
    target.api_key = "sk_test_demo" + secrets.token_hex(16)
    target.public_url = target.receiver_url


# --- steps ---------------------------------------------------------------------------------


def install_crd(kubectl: Kubectl) -> None:
    """Render the CRD from the chart (the file Helm installs) and apply it."""
    step(
        "Install the StripeWebhook CRD from the chart",
        f"helm template {CHART} --show-only {CRD_TEMPLATE} | kubectl apply -f -",
    )
    rendered = subprocess.run(
        [
            str(tool("helm")),
            "template",
            "demo",
            str(REPO_ROOT / CHART),
            "--show-only",
            CRD_TEMPLATE,
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    kubectl("apply", "--server-side", "-f", "-", input=rendered)
    kubectl("wait", "--for=condition=Established", "crd/stripewebhooks.stripe.operator.dev")
    note("crd/stripewebhooks.stripe.operator.dev established")


def child_env(target: Target) -> dict[str, str]:
    path = os.pathsep.join([str(TOOLS_BIN), str(VENV_BIN), os.environ.get("PATH", "")])
    return dict(
        os.environ,
        PATH=path,
        KUBECONFIG=str(target.kubeconfig),
        STRIPE_API_BASE=target.stripe_base,
    )


def start_receiver(target: Target) -> None:
    """Run the projector (the kubelet's part) and the receiver on 127.0.0.1."""
    kubectl = target.kubectl()
    kubectl("create", "namespace", RECEIVER_NAMESPACE, check=False)
    secrets_dir = target.workdir / "receiver-secrets"
    database = target.workdir / "receiver.db"
    step(
        "Start the receiver (SQLite) with the aggregated Secret projected into --secrets-dir",
        f"stripe-webhook-receiver --secrets-dir {secrets_dir} "
        f"--database-url sqlite:///{database} --host 127.0.0.1 --port {target.receiver_port}",
    )
    projector = SecretProjector(target.kubeconfig, RECEIVER_NAMESPACE, RECEIVER_SECRET, secrets_dir)
    target.cleanup.append(projector)
    projector.start()
    receiver = ManagedProcess(
        "receiver",
        [
            str(VENV_BIN / "stripe-webhook-receiver"),
            f"--secrets-dir={secrets_dir}",
            f"--database-url=sqlite:///{database}",
            "--host=127.0.0.1",
            f"--port={target.receiver_port}",
        ],
        target.workdir / "receiver.log",
        env=child_env(target),
    )
    target.cleanup.append(receiver)
    receiver.start()
    poll(
        "the receiver's /healthz", lambda: _healthy(receiver, f"{target.receiver_url}/healthz"), 30
    )
    note(f"receiver listening on {target.receiver_url}")


def start_operator(target: Target) -> ManagedProcess:
    """Run the operator with the readiness handshake pointed at the local receiver."""
    metrics_port = free_port()
    argv = [
        str(VENV_BIN / "stripe-webhook-operator"),
        f"--receiver-url={target.receiver_url}",
        f"--public-base-url={target.public_url}",
        f"--receiver-namespace={RECEIVER_NAMESPACE}",
        *([f"--namespace={target.namespace}"] if target.namespace else []),
        "--metrics-host=127.0.0.1",
        f"--metrics-port={metrics_port}",
        "--propagation-interval=250ms",
    ]
    shown = [Path(argv[0]).name, *argv[1:]]
    step("Start the operator", " ".join(shown))
    operator = ManagedProcess(
        "operator", argv, target.workdir / "operator.log", env=child_env(target)
    )
    target.cleanup.append(operator)
    operator.start()
    url = f"http://127.0.0.1:{metrics_port}/healthz"
    poll("the operator's /healthz", lambda: _healthy(operator, url), 60)
    note(f"operator running; metrics on http://127.0.0.1:{metrics_port}/metrics")
    return operator


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
    install_crd(kubectl)
    start_receiver(target)
    start_operator(target)
    apply_examples(target)
    before = wait_ready(target)
    key = receipts_api_key(
        target, str(before.get("secretName") or f"{WEBHOOK_NAME}-stripe-webhook")
    )
    subscription_id = create_subscription(target)
    register_receipt(target, key, subscription_id)
    first = update_and_show(target, key, subscription_id, cancel_at_period_end=True)
    rotate(target)
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
                note(
                    f"Stripe sends events to {target.public_url}, which must forward to "
                    f"{target.receiver_url}"
                )
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
            left = target.stop_all()
            if left:
                print(f"    still running: PIDs {left}; stop them with `kill PID`", flush=True)
        print("", flush=True)
        for line in summary:
            print(line, flush=True)
        took = time.monotonic() - began
        print(f"SUMMARY took={took:.0f}s leftover_processes={len(left)}", flush=True)
    return 0 if not left else 1


if __name__ == "__main__":
    sys.exit(main())
