# Kaizen: the two commands that must always work on a fresh machine are `make run` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: setup run test test-all test-deps lint format bench compile clean images image-tools image-lint \
	manifests-check

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with its dev tools

run: setup ## run the training pipeline locally on the embedded defaults
	$(BIN)/kaizen run

test: setup lint test-deps manifests-check workflows-check ## lint, type-check, check the manifests, run the tests (not slow)
	$(BIN)/python -m pytest -m "not slow" -q --durations=15

test-all: setup lint test-deps manifests-check workflows-check rehearsal-deps ## everything, including the slow suites
	$(BIN)/python -m pytest -q

# System packages the default suite runs for real: Debian's redis-server (Feast's Redis
# online store, tests/integration/test_feature_config_elsewhere.py) and promtool from its
# prometheus package (the alert rules, tests/manifests/test_monitoring_rules.py).
# Each entry is a command, or command=package when the package is named otherwise.
TEST_TOOLS := redis-server promtool=prometheus
test-deps: ## redis-server and promtool, apt-installed if missing
	@missing=""; for entry in $(TEST_TOOLS); do tool=$${entry%%=*}; package=$${entry#*=}; \
	  command -v $$tool >/dev/null || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: setup ## performance figures, each beside its baseline
	$(BIN)/python benchmarks/data.py
	$(BIN)/python benchmarks/features.py
	$(BIN)/python benchmarks/pipeline_overhead.py
	$(BIN)/python benchmarks/tuning.py
	$(BIN)/python benchmarks/serving.py

compile: setup ## regenerate the committed pipeline YAML
	$(BIN)/kaizen compile

clean:
	rm -rf .kaizen .pytest_cache .mypy_cache .ruff_cache

# --- container images: docs/containers.md ----------------------------------------------------
# Set on the command line or in the environment, e.g.
#   make images BASE_IMAGE=python:3.11-slim-bookworm@sha256:<digest>
CONTAINER_ENGINE ?= auto
BASE_IMAGE       ?= localhost/kaizen-debian-base:bookworm
COMPONENT_IMAGE  ?= localhost/kaizen-component:dev
SERVING_IMAGE    ?= localhost/kaizen-serving:dev
IMAGE_BUILD_FLAGS ?=
# KAIZEN_BUILD_MOUNTS: podman build -v options for this machine (unset: the host's CA bundle
# and /etc/pip.conf, read-only, when they exist; set it empty to mount nothing).
IMAGE_TOOLS  := podman buildah runc mmdebstrap
TOOLS_VENV   ?= .venv-tools
TOOLS_STAMP  := $(TOOLS_VENV)/.installed-stamp

image-tools: ## podman, buildah, runc and mmdebstrap (only it with docker), apt-installed if missing
	@tools="$(IMAGE_TOOLS)"; \
	if [ "$(CONTAINER_ENGINE)" = docker ] || \
	   { [ "$(CONTAINER_ENGINE)" = auto ] && docker info >/dev/null 2>&1; }; then \
	  tools=mmdebstrap; fi; \
	missing=""; for tool in $$tools; do \
	  command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

images: image-tools ## build the component and serving images, report sizes against budgets
	$(PYTHON) docker/build_images.py --engine "$(CONTAINER_ENGINE)" \
	  --base-image "$(BASE_IMAGE)" --component-image "$(COMPONENT_IMAGE)" \
	  --serving-image "$(SERVING_IMAGE)" --build-flags="$(IMAGE_BUILD_FLAGS)" \
	  $(if $(filter undefined,$(origin KAIZEN_BUILD_MOUNTS)),,--mounts="$(KAIZEN_BUILD_MOUNTS)")

$(TOOLS_STAMP): docker/lint-requirements.txt
	$(PYTHON) -m venv $(TOOLS_VENV)
	$(TOOLS_VENV)/bin/python -m pip install --quiet -r docker/lint-requirements.txt
	touch $(TOOLS_STAMP)

image-lint: $(TOOLS_STAMP) ## hadolint and checkov on the Dockerfiles: 0 findings
	$(TOOLS_VENV)/bin/hadolint --no-color docker/component.Dockerfile docker/serving.Dockerfile
	$(TOOLS_VENV)/bin/checkov --framework dockerfile --file docker/component.Dockerfile \
	  --file docker/serving.Dockerfile --compact --quiet --skip-download

# --- the cluster rehearsal: docs/rehearsal.md ---------------------------------------------------
REHEARSAL_TOOLS := redis-server docker-registry podman buildah runc
.PHONY: rehearsal rehearsal-deps

rehearsal-deps: ## redis-server, docker-registry, podman, buildah and runc, apt-installed if missing
	@missing=""; for tool in $(REHEARSAL_TOOLS); do \
	  command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

rehearsal: setup rehearsal-deps images ## services on 127.0.0.1, the pipeline in containers, serving
	$(BIN)/python -m kaizen.rehearsal

# --- Kubernetes manifests: docs/cluster.md --------------------------------------------------------
# Renders every overlay with `kubectl kustomize`, validates the built-in kinds against this
# Kubernetes version (kubernetes-validate, strict), the custom resources against the CRDs in
# tests/data/crds, Pod Security Standards "restricted" and KServe's and Katib's webhook rules,
# then runs checkov (from .venv-tools, as image-lint does). No cluster needed.
KUBERNETES_VERSION ?= 1.31.0

manifests-check: setup $(TOOLS_STAMP) ## render and check every overlay and katib/*.yaml: 0 problems
	@command -v kubectl >/dev/null || { \
	  echo "manifests-check needs kubectl (for kubectl kustomize)"; exit 2; }
	$(BIN)/python manifests/check.py --kubernetes-version $(KUBERNETES_VERSION) \
	  --checkov $(TOOLS_VENV)/bin/checkov

# --- CI/CD: .github/workflows and the Jenkinsfile, docs/ci.md -----------------------------------
.PHONY: workflows-check compile-check ci

workflows-check: setup ## actionlint (shellcheck on every run step) and zizmor --offline: 0 findings
	$(BIN)/actionlint -shellcheck $(BIN)/shellcheck -pyflakes ""
	$(BIN)/shellcheck .github/scripts/*.sh
	$(BIN)/zizmor --offline --persona pedantic .github

compile-check: compile ## the committed pipeline YAML is what `make compile` writes
	@git diff --exit-code -- pipelines/training_pipeline.yaml || { \
	  echo "pipelines/training_pipeline.yaml is out of date: commit what make compile wrote"; exit 1; }

ci: test manifests-check compile-check images ## here, what .github/workflows/ci.yml runs (no push)
