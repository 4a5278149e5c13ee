# syntax=docker/dockerfile:1
#
# mxrelay container image.
#
# Two stages: `build` installs the pinned runtime dependencies (deploy/image/requirements.txt, made
# by deploy/image/lock.py) and then mxrelay itself into a virtual environment with `--no-deps`, so
# nothing is resolved at build time; the final stage copies only that environment onto the same
# base image and runs it as an unprivileged user. Every instruction the program needs at run time
# uses the exec form, so no shell is involved in starting, probing or stopping it.
#
# Port 25 without root: the process holds no capability at all. Kubernetes pods lower the kernel's
# privileged-port boundary for their own network namespace with the namespaced, "safe" sysctl
# `net.ipv4.ip_unprivileged_port_start=25` (see deploy/kubernetes/base/deployment.yaml); Docker
# and Podman already set it to 0 for containers. docs/operations.md explains the choice.
#
# Build:  docker build --build-arg VERSION=$(git describe --tags) \
#           --build-arg REVISION=$(git rev-parse HEAD) -t mxrelay .
# tests/deploy/test_image_install.py runs this file's build-stage commands against a clean
# virtual environment, and tests/deploy/test_dockerfile.py checks the rules below.

ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
RUN python -m venv /opt/mxrelay
COPY deploy/image/requirements.txt deploy/image/requirements.txt
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/mxrelay/bin/pip install --disable-pip-version-check --no-deps --only-binary=:all: \
        --requirement deploy/image/requirements.txt
COPY pyproject.toml README.md ./
COPY src src
RUN --mount=type=cache,target=/root/.cache/pip \
    /opt/mxrelay/bin/pip install --disable-pip-version-check --no-deps . \
    && /opt/mxrelay/bin/pip check

FROM ${PYTHON_IMAGE}
ARG PYTHON_IMAGE
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="mxrelay" \
      org.opencontainers.image.description="Outbound email relay: recipient-domain validation at RCPT, iCalendar stripping, a searchable message log, delivery through Microsoft Graph or an SMTP smarthost from a durable queue." \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"
RUN groupadd --system --gid 10001 mxrelay \
    && useradd --system --uid 10001 --gid mxrelay --home-dir /var/lib/mxrelay --no-create-home \
        --shell /usr/sbin/nologin mxrelay \
    && install -d -o mxrelay -g mxrelay -m 0750 /var/lib/mxrelay
COPY --from=build /opt/mxrelay /opt/mxrelay
# The SMTP listener's default is given as the reference validator's LISTEN_ADDR, the lowest-ranked
# name for it: a LISTEN_ADDR of the deployment replaces it, and MXRELAY_SMTP_LISTEN wins over
# both, exactly as outside the image. (An image MXRELAY_SMTP_LISTEN would win over the
# deployment's LISTEN_ADDR, and a drop-in for the validator would listen elsewhere.)
# The web UI and API keep mxrelay's default, 127.0.0.1:8025: off loopback they need users
# (MXRELAY_UI_AUTH_FILE) or an authenticating proxy stated (MXRELAY_UI_AUTH=none), so the
# deployment that gives one of them also sets MXRELAY_HTTP_LISTEN=0.0.0.0:8025.
ENV PATH=/opt/mxrelay/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    LISTEN_ADDR=:25 \
    MXRELAY_METRICS_LISTEN=0.0.0.0:9090 \
    MXRELAY_DATABASE_URL=sqlite:////var/lib/mxrelay/mxrelay.db \
    MXRELAY_LOG_FORMAT=json
WORKDIR /var/lib/mxrelay
VOLUME ["/var/lib/mxrelay"]
USER 10001:10001
EXPOSE 25 8025 9090
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=15s --retries=3 \
    CMD ["/opt/mxrelay/bin/python", "-c", "import os, sys, urllib.request; port = os.environ.get('MXRELAY_METRICS_LISTEN', ':9090').rpartition(':')[2]; sys.exit(0 if urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4).status == 200 else 1)"]
ENTRYPOINT ["/opt/mxrelay/bin/mxrelay", "serve"]
