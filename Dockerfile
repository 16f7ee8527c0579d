# One image for both parts of stripe-webhook-operator: the console scripts
# `stripe-webhook-operator` and `stripe-webhook-receiver` (and `kubectl-stripe`) are all on PATH;
# the Helm chart sets each container's command. The base is pinned by tag; the Python packages
# by requirements/runtime.lock, the runtime subset of requirements/dev.lock.
#
# BASE_IMAGE is the official Python image a user pulls. `make image` builds on this machine,
# which reaches no image registry: it passes a base made from Debian's packages under a local
# name (localhost/...), never under the official image's name. Both have `python` on PATH.
ARG BASE_IMAGE=python:3.11.14-slim-trixie

# The builder stage resolves nothing: it installs the locked versions, then the project itself
# without dependencies, into a virtual environment that the final stage copies whole.
FROM ${BASE_IMAGE} AS builder

ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /src
RUN python -m venv /opt/venv

# Dependencies first, in their own layer, so source changes do not reinstall them.
COPY requirements/runtime.lock requirements/runtime.lock
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps --requirement requirements/runtime.lock

# The project's wheel, built with a pinned hatchling in a throwaway environment of its own (a
# distribution's Python may refuse installs into its own site-packages, PEP 668), instead of an
# unpinned isolated build.
COPY pyproject.toml README.md ./
COPY operator/stripe_webhook_operator operator/stripe_webhook_operator
COPY receiver/stripe_webhook_receiver receiver/stripe_webhook_receiver
RUN python -m venv /opt/build \
    && /opt/build/bin/pip install --no-cache-dir hatchling==1.33.0 \
    && /opt/build/bin/pip wheel --no-cache-dir --no-deps --no-build-isolation --wheel-dir /wheels . \
    && /opt/venv/bin/pip install --no-cache-dir --no-deps /wheels/*.whl


FROM ${BASE_IMAGE}

# The same numeric user and group as the chart's runAsUser/runAsGroup/fsGroup (10001), so
# `runAsNonRoot` can check it and mounted volumes are writable.
RUN groupadd --system --gid 10001 app \
    && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
       --shell /usr/sbin/nologin app

COPY --from=builder /opt/venv /opt/venv

# The chart mounts the root filesystem read-only: no bytecode writes; logs unbuffered.
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

USER 10001:10001

# 8000: the receiver's HTTP port; 8080: the operator's metrics and health port.
EXPOSE 8000 8080

CMD ["stripe-webhook-operator"]
