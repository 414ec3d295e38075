# The serving image: `kaizen serve`, the KServe predictor, and only what it needs (the project
# with its `serving` extra: no KFP, Katib, Optuna, pandera, scikit-learn, matplotlib, nor the
# MLflow tracking server). Build both images with `make images`; see docs/containers.md.

# Any Debian bookworm image with python3 (3.11) and python3-venv: `make images` builds
# localhost/kaizen-debian-base:bookworm without a registry; production passes
# python:3.11-slim-bookworm pinned by digest (docs/containers.md, "Base image").
# checkov:skip=CKV_DOCKER_7: the base is this build argument; checkov cannot see its tag.
# `make images` passes the local tag or a digest, and warns about an unpinned remote base.
ARG BASE_IMAGE=localhost/kaizen-debian-base:bookworm

FROM ${BASE_IMAGE} AS builder
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# tini: the final image's init (its static build, which needs nothing from the base);
# binutils: strip, for TensorFlow's libraries. Neither package reaches the final image.
RUN apt-get update \
 && apt-get install -y --no-install-recommends binutils=2.40-* tini=0.19.0-* \
 && rm -rf /var/lib/apt/lists/*
# pip lives in a venv of its own (/opt/build) and installs into /opt/venv with --python, so
# the runtime venv never holds pip: nothing installs anything at run time.
RUN python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-compile pip==26.3 \
 && python3 -m venv --without-pip /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
COPY pyproject.toml docker/pyproject_requirements.py ./
# Same as the component image (docker/component.Dockerfile says why): dependencies in their
# own layer, TensorFlow without its C++ headers and symbol tables, byte code compiled once.
RUN python pyproject_requirements.py pyproject.toml serving > requirements.txt \
 && /opt/build/bin/pip --python /opt/venv/bin/python install --no-compile -r requirements.txt \
 && /opt/build/bin/pip --python /opt/venv/bin/python check \
 && site_packages="$(python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
 && rm -rf "$site_packages/tensorflow/include" \
 && find "$site_packages/tensorflow" -name '*.so*' -type f -exec strip --strip-unneeded {} + \
 && python -m compileall -q -j 0 --invalidation-mode unchecked-hash /opt/venv/lib
COPY README.md ./
COPY kaizen ./kaizen
COPY components ./components
COPY pipelines ./pipelines
# Kaizen itself goes to /stage, for a small layer of its own in the final image.
RUN /opt/build/bin/pip --python /opt/venv/bin/python install --no-compile --no-deps --root /stage . \
 && python -m compileall -q -j 0 --invalidation-mode unchecked-hash -s /stage /stage/opt/venv/lib

FROM ${BASE_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    KAIZEN_HOME=/var/lib/kaizen \
    KAIZEN_FEATURE_REPO=/app/feature_repo
RUN groupadd --gid 10001 kaizen \
 && useradd --no-log-init --uid 10001 --gid kaizen --create-home --home-dir /home/kaizen \
    --shell /usr/sbin/nologin kaizen \
 && mkdir -p /var/lib/kaizen \
 && chown kaizen:kaizen /var/lib/kaizen
COPY --from=builder /usr/bin/tini-static /usr/bin/tini
COPY --from=builder /opt/venv /opt/venv
COPY --from=builder /stage/opt/venv /opt/venv
WORKDIR /app
# Entity requests read the online store through this Feast repo (owned by root, read only).
COPY feature_repo ./feature_repo
ARG KAIZEN_GIT_COMMIT=unknown
ENV KAIZEN_GIT_COMMIT=${KAIZEN_GIT_COMMIT}
LABEL org.opencontainers.image.title="kaizen-serving" \
      org.opencontainers.image.description="Kaizen's model server: the KServe predictor" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${KAIZEN_GIT_COMMIT}"
USER 10001:10001
EXPOSE 8080
# Readiness, not liveness: 503 until the champion is loaded and warmed, and again while
# draining. Loading takes 10-20 s (TensorFlow, Feast), hence the start period.
HEALTHCHECK --interval=15s --timeout=5s --start-period=90s --retries=3 \
    CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/v2/health/ready', timeout=4)"]
# tini is PID 1 and forwards SIGTERM to the server, which drains and exits 0. The server runs
# without `kaizen serve`'s supervisor (--no-supervise): in a container the runtime restarts it,
# and the supervisor's warm standby would cost a second TensorFlow process's memory.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["kaizen", "serve", "--host", "0.0.0.0", "--port", "8080", "--no-supervise"]
