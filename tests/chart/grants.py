"""What a chart grants a ServiceAccount (the rules of the roles its bindings name) and what that
account asked of the API server (the server's audit events), to compare the two."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from tests.chart.rendering import Manifest

DECISION = "authorization.k8s.io/decision"


@dataclass(frozen=True)
class Grant:
    """One verb on one resource (`resource/subresource`), perhaps only on some names, across
    the cluster (`namespace` None, from a ClusterRole) or in one namespace (a Role)."""

    verb: str
    group: str
    resource: str
    names: frozenset[str] = frozenset()
    namespace: str | None = None

    def __str__(self) -> str:
        text = f"{self.verb} {self.resource}.{self.group or 'core'}"
        if self.names:
            text += f" named {', '.join(sorted(self.names))}"
        return text + (f" in {self.namespace}" if self.namespace else " (ClusterRole)")


@dataclass(frozen=True)
class Request:
    """One audited request: what was asked (empty `resource` for a non-resource URL such as
    discovery) and the HTTP status and authorization decision it got."""

    verb: str
    group: str
    resource: str
    name: str
    namespace: str
    uri: str
    code: int
    decision: str

    @property
    def refused(self) -> bool:
        return self.code == 403 or self.decision == "forbid"


def service_account_user(namespace: str, name: str) -> str:
    """The user name a ServiceAccount's token authenticates as."""
    return f"system:serviceaccount:{namespace}:{name}"


def granted(manifests: list[Manifest], namespace: str, account: str) -> set[Grant]:
    """Every (verb, resource) the rendered `manifests` grant ServiceAccount `namespace/account`
    through their RoleBindings and ClusterRoleBindings."""
    subject = {"kind": "ServiceAccount", "name": account, "namespace": namespace}
    roles = {(m["kind"], m["metadata"]["name"]): m for m in manifests if "rules" in m}
    grants: set[Grant] = set()
    for binding in manifests:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if subject not in binding.get("subjects") or []:
            continue
        ref = binding["roleRef"]
        role = roles[(ref["kind"], ref["name"])]
        scope = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        for rule in role["rules"]:
            grants |= {
                Grant(verb, group, resource, frozenset(rule.get("resourceNames") or ()), scope)
                for group in rule.get("apiGroups") or ()
                for resource in rule.get("resources") or ()
                for verb in rule["verbs"]
            }
    return grants


def requests(audit_log: Path, user: str, since: str = "") -> list[Request]:
    """The requests `user` made itself (not through impersonation), from a JSON-lines audit
    log; with `since` (RFC 3339, UTC), only those the API server received from then on."""
    found: list[Request] = []
    for line in audit_log.read_text(errors="replace").splitlines():
        event = json.loads(line)
        if event["user"].get("username") != user or "impersonatedUser" in event:
            continue
        if since and event["requestReceivedTimestamp"] < since:
            continue
        ref = event.get("objectRef") or {}
        resource = ref.get("resource", "")
        if ref.get("subresource"):
            resource += f"/{ref['subresource']}"
        found.append(
            Request(
                verb=event["verb"],
                group=ref.get("apiGroup", ""),
                resource=resource,
                name=ref.get("name", ""),
                namespace=ref.get("namespace", ""),
                uri=event["requestURI"],
                code=int((event.get("responseStatus") or {}).get("code", 0)),
                decision=(event.get("annotations") or {}).get(DECISION, ""),
            )
        )
    return found


def uses(request: Request, grant: Grant) -> bool:
    """Whether `request` was allowed by (and so made use of) `grant`."""
    return (
        not request.refused
        and request.verb == grant.verb
        and request.group == grant.group
        and request.resource == grant.resource
        and (not grant.names or request.name in grant.names)
        and (grant.namespace is None or request.namespace == grant.namespace)
    )
