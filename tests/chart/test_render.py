"""The chart lints and renders over the values matrix, and what it renders is what it promises."""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import yaml

from devstack.processes import REPO_ROOT
from tests.chart.rendering import (
    CHART_DIR,
    NAMESPACE,
    RELEASE,
    VALUES_FILES,
    container,
    find,
    helm,
    kinds,
    notes,
    pod_specs,
    render,
    values_args,
)

CRD_FILE = REPO_ROOT / "crds" / "stripewebhooks.yaml"
CHART_LABEL_KEYS = {
    "helm.sh/chart",
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of",
}


@pytest.mark.parametrize("values", VALUES_FILES)
@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_helm_lint_passes(values: str, strict: bool) -> None:
    result = helm("lint", str(CHART_DIR), *values_args(values), *(["--strict"] if strict else []))
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_object_has_the_chart_labels(values: str) -> None:
    for manifest in render(values):
        labels = manifest["metadata"].get("labels", {})
        assert labels.get("app.kubernetes.io/instance") == RELEASE, manifest["metadata"]["name"]
        assert labels.get("app.kubernetes.io/name") == "stripe-webhook-operator"
        assert "app.kubernetes.io/component" in labels


def _without_chart_metadata(crd: dict[str, object]) -> dict[str, object]:
    metadata = dict(crd["metadata"])  # type: ignore[call-overload]
    metadata["labels"] = {
        k: v for k, v in metadata.get("labels", {}).items() if k not in CHART_LABEL_KEYS
    }
    metadata.pop("annotations", None)
    return {**crd, "metadata": metadata}


def test_chart_crd_is_the_crds_file_unchanged() -> None:
    source = yaml.safe_load(CRD_FILE.read_text())
    rendered = find(render(), "CustomResourceDefinition", "stripe.operator.dev")
    assert _without_chart_metadata(rendered) == source
    assert rendered["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}


def test_chart_reads_the_crd_through_a_symlink_to_crds() -> None:
    link = CHART_DIR / "files" / "stripewebhooks.yaml"
    assert link.is_symlink()
    assert link.resolve() == CRD_FILE.resolve()


def test_packaged_chart_carries_the_crd_content(tmp_path: Path) -> None:
    helm("package", str(CHART_DIR), "--destination", str(tmp_path))
    (archive,) = tmp_path.glob("*.tgz")
    with tarfile.open(archive) as tar:
        member = tar.getmember("stripe-webhook-operator/files/stripewebhooks.yaml")
        assert member.isfile(), "helm package must store the linked file's content"
        packed = tar.extractfile(member)
        assert packed is not None
        assert packed.read() == CRD_FILE.read_bytes()
    rendered = find(render(chart=archive), "CustomResourceDefinition", "stripe.operator.dev")
    assert _without_chart_metadata(rendered) == yaml.safe_load(CRD_FILE.read_text())


def test_crds_keep_off_drops_the_keep_policy() -> None:
    rendered = find(render(sets=["crds.keep=false"]), "CustomResourceDefinition")
    assert "helm.sh/resource-policy" not in rendered["metadata"].get("annotations", {})


def test_crds_off_renders_no_crd() -> None:
    assert "CustomResourceDefinition" not in kinds(render("crds-off"))


@pytest.mark.parametrize("values", VALUES_FILES)
def test_every_pod_runs_locked_down(values: str) -> None:
    specs = list(pod_specs(render(values)))
    assert len(specs) == 3  # operator, receiver, helm test pod
    for name, spec in specs:
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True, name
        assert pod["runAsUser"] == 10001, name
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, name
        for c in spec["containers"]:
            sc = c["securityContext"]
            assert sc["readOnlyRootFilesystem"] is True, (name, c["name"])
            assert sc["allowPrivilegeEscalation"] is False, (name, c["name"])
            assert sc["capabilities"] == {"drop": ["ALL"]}, (name, c["name"])
            assert "limits" in c["resources"], (name, c["name"])


@pytest.mark.parametrize("values", VALUES_FILES)
def test_writable_tmp_for_every_long_running_container(values: str) -> None:
    for manifest in render(values):
        if manifest["kind"] != "Deployment":
            continue
        spec = manifest["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in spec["volumes"]}
        for c in spec["containers"]:
            mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
            assert "emptyDir" in volumes[mounts["/tmp"]]


def test_receiver_has_no_token_and_no_rbac() -> None:
    manifests = render("ha")
    account = find(manifests, "ServiceAccount", "-receiver")
    assert account["automountServiceAccountToken"] is False
    receiver = find(manifests, "Deployment", "-receiver")
    assert receiver["spec"]["template"]["spec"]["automountServiceAccountToken"] is False
    for binding in manifests:
        if binding["kind"] in {"RoleBinding", "ClusterRoleBinding"}:
            names = {s["name"] for s in binding["subjects"]}
            assert account["metadata"]["name"] not in names


def test_receiver_mounts_the_aggregated_secret_as_an_optional_directory() -> None:
    receiver = find(render(), "Deployment", "-receiver")
    spec = receiver["spec"]["template"]["spec"]
    volume = next(v for v in spec["volumes"] if "secret" in v)
    assert volume["secret"] == {"secretName": "stripe-webhook-receiver-secrets", "optional": True}
    mount = next(m for m in spec["containers"][0]["volumeMounts"] if m["name"] == volume["name"])
    assert mount == {"name": volume["name"], "mountPath": "/etc/stripe-webhooks", "readOnly": True}
    args = container(receiver, "receiver")["args"]
    assert "--secrets-dir=/etc/stripe-webhooks" in args
    assert "--host=0.0.0.0" in args
    assert "--port=8000" in args


def _env(deployment: dict[str, object], name: str) -> dict[str, object]:
    c = container(deployment, name)  # type: ignore[arg-type]
    return {e["name"]: e for e in c["env"]}


def test_sqlite_by_default_on_a_claim_with_a_recreate_strategy() -> None:
    manifests = render()
    receiver = find(manifests, "Deployment", "-receiver")
    url = _env(receiver, "receiver")["STRIPE_WEBHOOK_RECEIVER_DATABASE_URL"]
    assert url["value"] == "sqlite:////var/lib/stripe-webhook-receiver/receiver.db"
    assert receiver["spec"]["strategy"] == {"type": "Recreate"}
    claim = find(manifests, "PersistentVolumeClaim")
    volumes = receiver["spec"]["template"]["spec"]["volumes"]
    data = next(v for v in volumes if v["name"] == "data")
    assert data["persistentVolumeClaim"]["claimName"] == claim["metadata"]["name"]


@pytest.mark.parametrize(
    ("values", "secret_name", "key"),
    [
        ("postgres-url", f"{RELEASE}-stripe-webhook-operator-receiver-database", "database-url"),
        ("postgres-secret", "receiver-database", "url"),
    ],
)
def test_postgres_url_comes_from_a_secret(values: str, secret_name: str, key: str) -> None:
    manifests = render(values)
    receiver = find(manifests, "Deployment", "-receiver")
    url = _env(receiver, "receiver")["STRIPE_WEBHOOK_RECEIVER_DATABASE_URL"]
    assert url["valueFrom"] == {"secretKeyRef": {"name": secret_name, "key": key}}
    assert not any("postgresql://" in arg for arg in container(receiver, "receiver")["args"])
    assert "PersistentVolumeClaim" not in kinds(manifests)


def test_operator_is_pointed_at_the_receiver_service() -> None:
    manifests = render()
    service = find(manifests, "Service", "-receiver")
    name, port = service["metadata"]["name"], service["spec"]["ports"][0]["port"]
    args = container(find(manifests, "Deployment", "-operator"), "operator")["args"]
    assert f"--receiver-url=http://{name}.{NAMESPACE}.svc:{port}" in args
    assert f"--receiver-service={NAMESPACE}/{name}" in args
    assert f"--receiver-namespace={NAMESPACE}" in args
    assert "--receiver-secret-name=stripe-webhook-receiver-secrets" in args
    assert "--metrics-port=8080" in args
    assert not any(arg.startswith(("--peering", "--public-base-url")) for arg in args)


def test_public_base_url_follows_the_ingress_host() -> None:
    manifests = render("ingress")
    args = container(find(manifests, "Deployment", "-operator"), "operator")["args"]
    assert "--public-base-url=https://hooks.example.com" in args
    ingress = find(manifests, "Ingress")
    (path,) = ingress["spec"]["rules"][0]["http"]["paths"]
    assert path["path"] == "/webhooks"


def test_cluster_id_and_api_base_reach_the_operator() -> None:
    operator = find(render("servicemonitor"), "Deployment", "-operator")
    assert "--cluster-id=production-eu" in container(operator, "operator")["args"]
    env = _env(operator, "operator")
    assert env["STRIPE_API_BASE"]["value"] == "http://stripe-emulator.testing.svc:12111"
    assert env["POD_ID"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_one_operator_pod_runs_without_peering() -> None:
    manifests = render()
    assert "ClusterKopfPeering" not in kinds(manifests)
    role = find(manifests, "ClusterRole")
    assert not any("kopf.dev" in rule["apiGroups"] for rule in role["rules"])


def test_several_operator_pods_peer_through_kopf() -> None:
    manifests = render("ha")
    operator = find(manifests, "Deployment", "-operator")
    assert operator["spec"]["replicas"] == 2
    assert "--peering=stripe-webhook-operator" in container(operator, "operator")["args"]
    crd = find(manifests, "CustomResourceDefinition", "kopf.dev")
    assert crd["spec"]["scope"] == "Cluster"
    peering = find(manifests, "ClusterKopfPeering")
    assert peering["metadata"]["name"] == "stripe-webhook-operator"
    role = find(manifests, "ClusterRole")
    kopf_rules = [r for r in role["rules"] if r["apiGroups"] == ["kopf.dev"]]
    assert {v for r in kopf_rules for v in r["verbs"]} == {"list", "watch", "patch"}


def test_peering_crd_can_be_left_to_another_operator() -> None:
    manifests = render("ha", ["operator.peering.crd.enabled=false"])
    assert not any(m["metadata"]["name"].endswith("kopf.dev") for m in manifests)
    assert "ClusterKopfPeering" in kinds(manifests)


def test_autoscaling_replaces_fixed_replicas() -> None:
    manifests = render("postgres-secret")
    receiver = find(manifests, "Deployment", "-receiver")
    assert "replicas" not in receiver["spec"]
    hpa = find(manifests, "HorizontalPodAutoscaler")
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 6)
    assert hpa["spec"]["scaleTargetRef"]["name"] == receiver["metadata"]["name"]


def test_disruption_budgets_select_their_pods() -> None:
    manifests = render("ha")
    for suffix, field, value in (
        ("-operator", "minAvailable", 1),
        ("-receiver", "maxUnavailable", 1),
    ):
        budget = find(manifests, "PodDisruptionBudget", suffix)
        deployment = find(manifests, "Deployment", suffix)
        assert budget["spec"][field] == value
        assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_selectors_use_only_stable_labels() -> None:
    for manifest in render("ha"):
        if manifest["kind"] == "Deployment":
            selector = manifest["spec"]["selector"]["matchLabels"]
            assert set(selector) == {
                "app.kubernetes.io/name",
                "app.kubernetes.io/instance",
                "app.kubernetes.io/component",
            }


def test_network_policies_let_the_operator_reach_the_receiver() -> None:
    manifests = render("networkpolicy")
    policy = find(manifests, "NetworkPolicy", "-receiver")
    operator = find(manifests, "Deployment", "-operator")
    operator_selector = operator["spec"]["selector"]["matchLabels"]
    peers = [peer for rule in policy["spec"]["ingress"] for peer in rule.get("from", [])]
    assert {"podSelector": {"matchLabels": operator_selector}} in peers
    egress_ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
    assert egress_ports == {53, 5432}


def test_service_monitors_scrape_both_parts() -> None:
    manifests = render("servicemonitor")
    ports = {
        find(manifests, "ServiceMonitor", s)["spec"]["endpoints"][0]["port"]
        for s in ("-operator", "-receiver")
    }
    assert ports == {"metrics", "http"}
    assert "ServiceMonitor" not in kinds(render())


def test_dashboard_configmap_carries_the_dashboard_file() -> None:
    dashboard = CHART_DIR / "dashboards" / "stripe-webhook.json"
    assert "ConfigMap" not in kinds(render())
    configmap = find(render(sets=["dashboards.enabled=true"]), "ConfigMap", "-dashboard")
    assert configmap["data"]["stripe-webhook.json"] == dashboard.read_text()
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"


def test_prometheus_rule_is_the_rules_file_unchanged() -> None:
    rules = yaml.safe_load((CHART_DIR / "alerts" / "stripe-webhook-rules.yaml").read_text())
    assert "PrometheusRule" not in kinds(render())
    rule = find(render("servicemonitor"), "PrometheusRule", "")
    assert rule["spec"] == rules
    assert rule["metadata"]["namespace"] == NAMESPACE
    assert rule["metadata"]["labels"]["release"] == "prometheus"
    assert rule["metadata"]["labels"]["app.kubernetes.io/component"] == "alerts"


def test_helm_test_hook_asks_both_health_endpoints() -> None:
    pod = find(render(), "Pod", "-test-health")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    urls = pod["spec"]["containers"][0]["args"][1:]
    assert urls == [
        f"http://{RELEASE}-stripe-webhook-operator-receiver.{NAMESPACE}.svc:8000/readyz",
        f"http://{RELEASE}-stripe-webhook-operator-operator.{NAMESPACE}.svc:8080/readyz",
    ]
    assert "Pod" not in kinds(render(sets=["tests.enabled=false"]))


def test_notes_name_the_endpoint_url_and_the_next_commands() -> None:
    text = notes("ingress")
    assert "https://hooks.example.com/webhooks/billing/my-app" in text
    assert "kubectl get swh --all-namespaces" in text
    assert "kubectl stripe status" in text
    assert "kubectl apply -f -" in text


def test_notes_without_a_public_url_ask_for_spec_url() -> None:
    text = notes()
    assert "every StripeWebhook\n   must set `spec.url`" in text
    assert "url: https://hooks.example.com/webhooks/billing/my-app" in text
