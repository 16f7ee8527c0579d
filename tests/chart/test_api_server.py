"""Every object the chart renders, over the whole values matrix, is accepted by the real API
server of the local control plane (server-side dry run, strict field validation)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import yaml

from devstack.cluster.kubectl import Kubectl, KubectlError
from tests.chart.cluster import (
    CRD,
    PROMETHEUS_RULE_CRD,
    SERVICE_MONITOR_CRD,
    apply_crds,
    dry_run,
)
from tests.chart.rendering import VALUES_FILES, render

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def service_monitor_crd(kubectl: Kubectl) -> Iterator[None]:
    """The ServiceMonitor and PrometheusRule kinds, so the chart's monitoring objects can be
    validated."""
    crds = [yaml.safe_load(path.read_text()) for path in (SERVICE_MONITOR_CRD, PROMETHEUS_RULE_CRD)]
    apply_crds(kubectl, crds)
    yield
    for crd in crds:
        kubectl("delete", "crd", crd["metadata"]["name"], "--wait=false", "--ignore-not-found")


@pytest.mark.parametrize("values", VALUES_FILES)
def test_api_server_accepts_every_rendered_object(
    values: str, kubectl: Kubectl, kube_namespace: str, service_monitor_crd: None
) -> None:
    manifests = render(values, namespace=kube_namespace)
    crds = [m for m in manifests if m["kind"] == CRD]
    # CRDs are created for real: the objects of their kinds can only be checked once they serve.
    apply_crds(kubectl, crds)
    others = [m for m in manifests if m["kind"] != CRD]
    report = dry_run(kubectl, others)
    assert report.count("(server dry run)") == len(others), report


def test_api_server_refuses_a_misspelt_field(
    kubectl: Kubectl, kube_namespace: str, service_monitor_crd: None
) -> None:
    """The check above would catch a template typo: strict validation refuses unknown fields."""
    manifests = render("servicemonitor", namespace=kube_namespace)
    monitor = next(m for m in manifests if m["kind"] == "ServiceMonitor")
    monitor["spec"]["endpoints"][0]["scrapeIntervall"] = "30s"
    rule = next(m for m in manifests if m["kind"] == "PrometheusRule")
    rule["spec"]["groups"][0]["rules"][0]["annotation"] = {"summary": "misspelt"}
    deployment = next(m for m in manifests if m["kind"] == "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["securityContext"]["readOnly"] = True
    for broken in (monitor, rule, deployment):
        with pytest.raises(KubectlError, match="unknown field"):
            dry_run(kubectl, [broken])
