#!/usr/bin/env bash
# Installs the Debian packages the local stack uses, only when they are missing.
set -euo pipefail
need=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || need+=(postgresql)
command -v wrk >/dev/null || need+=(wrk)
command -v npm >/dev/null || need+=(npm)
# `ip` (network namespaces for the multi-replica handshake test, devstack.node.netns).
command -v ip >/dev/null || need+=(iproute2)
# Prometheus and promtool (devstack.services.prometheus; the alerting rules' unit tests).
command -v prometheus >/dev/null && command -v promtool >/dev/null || need+=(prometheus)
# The node's images, built without a registry (devstack.image): the base by mmdebstrap, the
# project's Dockerfile by buildah; skopeo for their archives; gcc for the static pause binary.
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v buildah >/dev/null || need+=(buildah)
command -v skopeo >/dev/null || need+=(skopeo)
command -v gcc >/dev/null || need+=(gcc)
# The real node (devstack.node): containerd 1.6 with runc, the CNI plugins, iptables for
# kube-proxy.
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "missing Debian packages: ${need[*]}; install them with: sudo apt-get install ${need[*]}" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
