# The component image: every KFP pipeline step and the Katib trial run on it (the project with
# its `pipeline` extra). Build both images with `make images`; see docs/containers.md. By hand,
# from the repository root:
#   podman build --format docker -f docker/component.Dockerfile --build-arg BASE_IMAGE=... -t IMAGE .
# `kaizen compile --image-digest sha256:...` then pins the pushed image in the pipeline YAML.

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
# The dependencies get a layer of their own, so a change to Kaizen's code reinstalls Kaizen
# only. TensorFlow's C++ headers (430 MB, for building custom ops) go, and its libraries lose
# their symbol tables (about 270 MB), which nothing reads at run time; other packages'
# libraries are left alone (stripping auditwheel-patched ones, such as numpy's, breaks them).
# Byte code is compiled once here, unchecked (the image never changes its sources): each
# step's process starts about 8 s sooner than compiling TensorFlow, Feast and MLflow at import.
RUN python pyproject_requirements.py pyproject.toml pipeline > requirements.txt \
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
# Kaizen itself goes to /stage, and from there into a small layer of the final image of its
# own: a code change leaves the final image's dependency layer as it was.
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
# The pipeline reads katib/ relative to the working directory; both stay owned by root.
COPY feature_repo ./feature_repo
COPY katib ./katib
ARG KAIZEN_GIT_COMMIT=unknown
ENV KAIZEN_GIT_COMMIT=${KAIZEN_GIT_COMMIT}
LABEL org.opencontainers.image.title="kaizen-component" \
      org.opencontainers.image.description="Kaizen's KFP pipeline steps and Katib trial" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.revision="${KAIZEN_GIT_COMMIT}"
USER 10001:10001
# Pipeline steps and trials are batch processes: there is no service to probe.
HEALTHCHECK NONE
# tini is PID 1: it forwards SIGTERM/SIGINT to the command and reaps orphaned processes
# (kfp.local and the Optuna executor start child processes).
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["kaizen", "--help"]
