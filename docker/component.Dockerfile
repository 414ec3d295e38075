# The component image: every KFP component and the Katib trial run on it.
# Build from the repository root:  docker build -f docker/component.Dockerfile -t IMAGE .
# `kaizen compile --image-digest sha256:...` then pins the pushed image in the pipeline YAML.
FROM python:3.11.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    KAIZEN_HOME=/var/lib/kaizen \
    KAIZEN_FEATURE_REPO=/app/feature_repo

RUN groupadd --gid 10001 kaizen \
 && useradd --uid 10001 --gid kaizen --home-dir /app --shell /usr/sbin/nologin kaizen

WORKDIR /app
COPY pyproject.toml README.md ./
COPY kaizen ./kaizen
COPY components ./components
COPY pipelines ./pipelines
RUN pip install --no-compile . \
 && mkdir -p "$KAIZEN_HOME" && chown kaizen:kaizen "$KAIZEN_HOME"
COPY --chown=kaizen:kaizen feature_repo ./feature_repo
COPY --chown=kaizen:kaizen katib ./katib

USER 10001:10001
ENTRYPOINT []
CMD ["kaizen", "--help"]
