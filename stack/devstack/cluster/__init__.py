"""The Kubernetes control plane of the local stack (etcd, API server, controller manager), the
kubeconfigs and kubectl that reach it, and its pytest fixtures."""
