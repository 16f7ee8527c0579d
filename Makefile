# One entry point for people and CI. `make demo` and `make test` work on a fresh machine:
# each target installs what it needs (virtual environment, Go-built tools, Debian packages).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
TOOLS := .tools/bin
export PATH := $(CURDIR)/$(TOOLS):$(CURDIR)/$(VENV)/bin:$(PATH)
export PYTHONPATH := $(CURDIR)/stack
export GOFLAGS := -buildvcs=false
export CGO_ENABLED := 0

# Versions of the Go-built tools. Kubernetes and etcd follow stack/go/*/go.mod.
K8S_VERSION := v1.36.3
HELM_VERSION := v4.3.1
STRIPE_MOCK_VERSION := v0.203.0
COREDNS_VERSION := v1.15.0
LOCAL_PATH_VERSION := v0.0.30

K8S_LDFLAGS := -s -w $(foreach p,k8s.io/client-go/pkg/version k8s.io/component-base/version,\
  -X $(p).gitVersion=$(K8S_VERSION) -X $(p).gitMajor=1 -X $(p).gitMinor=36 \
  -X $(p).gitTreeState=clean -X $(p).buildDate=2026-01-01T00:00:00Z)

.PHONY: help
help: ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-16s %s\n", $$1, $$2}'

# --- installation -------------------------------------------------------------------------

$(VENV)/.stamp: pyproject.toml requirements/dev.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements/dev.lock
	$(PY) -m pip install --quiet --no-deps -e .
	touch $@

.PHONY: venv
venv: $(VENV)/.stamp ## Create the virtual environment (.venv) from the pinned lock.

K8S_COMMANDS := kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy
K8S_TOOLS := $(addprefix $(TOOLS)/,$(K8S_COMMANDS))

# One `go build` for all six, so the packages they share compile once.
$(K8S_TOOLS) &: stack/go/kubernetes/go.mod stack/go/kubernetes/go.sum
	@mkdir -p $(TOOLS)
	cd stack/go/kubernetes && go build -trimpath -ldflags '$(K8S_LDFLAGS)' -o $(CURDIR)/$(TOOLS)/ \
	  $(addprefix k8s.io/kubernetes/cmd/,$(K8S_COMMANDS))
	@touch $(K8S_TOOLS)

$(TOOLS)/etcd: stack/go/etcd/go.mod stack/go/etcd/go.sum stack/go/etcd/main.go
	@mkdir -p $(TOOLS)
	cd stack/go/etcd && go build -trimpath -ldflags '-s -w' -o $(CURDIR)/$@ .

# A tool installed by version is rebuilt when its version changes, not on every edit of this
# file: each depends on a stamp named after its version.
STAMPS := .tools/stamps
$(STAMPS)/%:
	@mkdir -p $(STAMPS)
	@touch $@

$(TOOLS)/helm: $(STAMPS)/helm-$(HELM_VERSION)
	@mkdir -p $(TOOLS)
	GOBIN=$(CURDIR)/$(TOOLS) go install -trimpath \
	  -ldflags '-s -w -X helm.sh/helm/v4/internal/version.version=$(HELM_VERSION)' \
	  helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	@touch $@

$(TOOLS)/stripe-mock: $(STAMPS)/stripe-mock-$(STRIPE_MOCK_VERSION)
	@mkdir -p $(TOOLS)
	GOBIN=$(CURDIR)/$(TOOLS) go install -trimpath -ldflags '-s -w' github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)
	@touch $@

# Cluster DNS of the local node, packaged as a static image by stack/devstack/image.
$(TOOLS)/coredns: $(STAMPS)/coredns-$(COREDNS_VERSION)
	@mkdir -p $(TOOLS)
	GOBIN=$(CURDIR)/$(TOOLS) go install -trimpath -ldflags '-s -w' github.com/coredns/coredns@$(COREDNS_VERSION)
	@touch $@

# The node's default StorageClass provisioner (the one kind ships).
$(TOOLS)/local-path-provisioner: $(STAMPS)/local-path-$(LOCAL_PATH_VERSION)
	@mkdir -p $(TOOLS)
	GOBIN=$(CURDIR)/$(TOOLS) go install -trimpath -ldflags '-s -w' github.com/rancher/local-path-provisioner@$(LOCAL_PATH_VERSION)
	@touch $@

GO_TOOLS := $(K8S_TOOLS) $(TOOLS)/etcd $(TOOLS)/helm $(TOOLS)/stripe-mock $(TOOLS)/coredns $(TOOLS)/local-path-provisioner

.PHONY: tools
tools: $(GO_TOOLS) ## Build the Go tools into .tools/bin.

.PHONY: system-packages
system-packages: ## Install the Debian packages the stack needs (PostgreSQL, containerd, buildah, ...).
	@stack/install-system-packages.sh

tests/receiver/js/node_modules/.stamp: tests/receiver/js/package.json tests/receiver/js/package-lock.json
	cd tests/receiver/js && npm ci --silent --no-audit --no-fund
	touch $@

.PHONY: node
node: tests/receiver/js/node_modules/.stamp

# The node's images (the project's from its Dockerfile); each rebuilt only when its inputs
# changed (stack/devstack/image keeps a key per image).
.PHONY: image
image: venv tools system-packages ## Build the project's image and the node's images (no registry).
	$(PY) -m devstack.image

.PHONY: install
install: venv tools system-packages node image ## Everything the suite and the demo need.

# --- running ------------------------------------------------------------------------------

.PHONY: test
test: install lint ## Lint, then run the whole suite on the local stack (what CI runs).
	$(PY) -m pytest

.PHONY: test-unit
test-unit: venv node $(TOOLS)/helm ## Run only the fast unit layer (no local stack).
	$(PY) -m pytest -m "not integration"

.PHONY: lint
lint: venv ## ruff and mypy.
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

.PHONY: dev-up
dev-up: install ## Start the local stack in the background and write .dev/env.
	$(PY) -m devstack up

.PHONY: dev-down
dev-down: ## Stop every process dev-up started.
	@if [ -x $(PY) ]; then $(PY) -m devstack down; fi

.PHONY: demo
demo: install ## The whole journey on the local stack; leaves nothing running.
	$(PY) -m devstack.demo

.PHONY: bench
bench: install ## Every benchmark, one after another (run it on a quiet machine).
	$(PY) -m benchmarks.receiver_bench
	$(PY) -m benchmarks.operator_bench
	$(PY) -m benchmarks.recovery_bench
	$(PY) -m benchmarks.rotation_bench
	$(PY) -m benchmarks.propagation_bench

.PHONY: bench-receiver
bench-receiver: install ## Receiver throughput and latency against baselines.
	$(PY) -m benchmarks.receiver_bench

.PHONY: bench-operator
bench-operator: install ## Operator time-to-Ready, calls per CR and memory.
	$(PY) -m benchmarks.operator_bench

.PHONY: bench-rotation
bench-rotation: install ## Rotations under live traffic: failed deliveries and duplicates.
	$(PY) -m benchmarks.rotation_bench

.PHONY: bench-propagation
bench-propagation: install ## New and rotated secrets reaching the receiver Pod, with and without the nudge.
	$(PY) -m benchmarks.propagation_bench

.PHONY: bench-recovery
bench-recovery: install ## Recovery of one gap of 10,000 events against the rate-limit floor.
	$(PY) -m benchmarks.recovery_bench

.PHONY: soak
soak: install ## Long reliability runs; writes docs/reliability.md.
	SOAK=1 $(PY) -m pytest tests/reliability tests/node/test_node_faults.py \
	  tests/node/test_pod_faults.py::test_receiver_pod_deleted_under_traffic_is_replaced_and_loses_nothing \
	  -p no:randomly
