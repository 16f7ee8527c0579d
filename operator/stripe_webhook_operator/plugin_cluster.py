"""How `kubectl stripe` reaches the cluster: the kubeconfig and its context, and the
StripeWebhook API through the operator's own Kubernetes client (kube.py), every refusal turned
into one sentence."""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from stripe_webhook_operator.exceptions import PluginError

if TYPE_CHECKING:
    from stripe_webhook_operator.kube import Kube

T = TypeVar("T")


class Cluster:
    """The StripeWebhook API of one cluster, through the operator's Kubernetes client; use it
    as an async context manager (it holds the connections)."""

    def __init__(self, kubeconfig: str | None, context: str | None) -> None:
        # Imported here so `--help` and argument errors answer at once.
        from kubernetes import config as untyped_config
        from kubernetes.config.config_exception import ConfigException

        from stripe_webhook_operator import kube

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
            configuration = kube.load_configuration(path, context, persist=False)
        except (ConfigException, OSError) as exc:
            raise PluginError(
                f"Cannot load the kubeconfig '{path}' ({_first_line(exc)}); "
                "point `--kubeconfig` or `KUBECONFIG` at a working one."
            ) from exc
        self.default_namespace = str(
            ((chosen or {}).get("context") or {}).get("namespace") or "default"
        )
        self.server = str(configuration.host)
        self._configuration = configuration
        self._kube: Kube | None = None

    async def __aenter__(self) -> Cluster:
        from stripe_webhook_operator.kube import Kube

        self._kube = Kube.from_configuration(self._configuration)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._kube is not None:
            await self._kube.close()
            self._kube = None

    async def get(self, namespace: str, name: str) -> dict[str, Any]:
        """Return one StripeWebhook."""
        what = f"StripeWebhook '{namespace}/{name}'"
        found = await self._call(
            lambda kube: kube.get_webhook(namespace, name, missing_ok=False), what
        )
        return self._found(found, what)

    async def annotate(
        self, namespace: str, name: str, annotations: Mapping[str, str | None]
    ) -> dict[str, Any]:
        """Set (or, with None, remove) annotations on one StripeWebhook."""
        what = f"StripeWebhook '{namespace}/{name}'"
        patched = await self._call(
            lambda kube: kube.patch_webhook_annotations(
                namespace, name, annotations, missing_ok=False
            ),
            what,
        )
        return self._found(patched, what)

    async def list(self, namespace: str | None) -> list[dict[str, Any]]:
        """Return the StripeWebhooks of one namespace, or of all with None."""
        if namespace is None:
            return await self._call(
                lambda kube: kube.list_webhooks((), missing_ok=False), "StripeWebhooks"
            )
        return await self._call(
            lambda kube: kube.list_webhooks((namespace,), missing_ok=False),
            f"StripeWebhooks in namespace '{namespace}'",
        )

    @staticmethod
    def _found(body: dict[str, Any] | None, what: str) -> dict[str, Any]:
        if body is None:  # only with `missing_ok`, which these calls do not set
            raise PluginError(api_error_sentence(404, "not found", what))
        return body

    async def _call(self, call: Callable[[Kube], Awaitable[T]], what: str) -> T:
        import httpx

        from stripe_webhook_operator.exceptions import KubernetesError

        assert self._kube is not None, "use the Cluster with `async with`"
        try:
            return await call(self._kube)
        except KubernetesError as exc:
            raise PluginError(api_error_sentence(exc.status, exc.detail, what)) from exc
        except httpx.HTTPError as exc:
            raise PluginError(
                f"Cannot reach the Kubernetes API server at {self.server} "
                f"({type(exc).__name__}); check that the cluster runs and the kubeconfig "
                "points at it."
            ) from exc


def api_error_sentence(status: int | None, message: str, what: str) -> str:
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
