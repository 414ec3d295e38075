"""Check the kustomize overlays as the cluster would, without a cluster (`make manifests-check`).

For every overlay under ``manifests/overlays/`` this program:

1. renders it with ``kubectl kustomize``, in a temporary copy of ``manifests/`` where each
   overlay's ``credentials.env`` is its ``credentials.env.example`` without the guard line (so
   the check never reads real credentials, and always renders), with kustomize's origin
   annotations switched on so every problem names the file an object came from;
2. validates each built-in kind with ``kubernetes-validate`` in strict mode (unknown fields
   refused) against a pinned Kubernetes version;
3. validates each custom resource against its upstream CRD in ``tests/data/crds/`` with
   ``additionalProperties: false`` added wherever the CRD does not set
   ``x-kubernetes-preserve-unknown-fields``, so an unknown field fails as the API server's
   pruning would silently drop it;
4. applies what admission webhooks and policy enforce and no schema does: Pod Security
   Standards ``restricted`` on every pod spec (also inside the InferenceService and the Katib
   trial template), requests and limits, probes for serving containers, a read-only root
   filesystem, images by digest, KServe's InferenceService webhook rules, Katib's Experiment
   rules (``kaizen.tuning.spec``), valid Secret and ConfigMap keys, namespaced RBAC without
   wildcards;
5. runs checkov (``--framework kubernetes``) on the rendered overlay: 0 failed checks, every
   skip justified inline with a ``checkov.io/skip<N>`` annotation.

The Katib Experiments in ``katib/`` are checked by steps 3 and 4 too: the tune task creates
them on the cluster as they are.

Every problem is one line: ``<overlay or file>: <Kind>/<name> (<source file>): <field>: <problem>``.
Exit status 0 when nothing is wrong, 1 when something is, 2 when a tool is missing or fails.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

MANIFESTS = Path(__file__).resolve().parent
REPOSITORY = MANIFESTS.parent
CRD_DIR = REPOSITORY / "tests" / "data" / "crds"
KATIB_DIR = REPOSITORY / "katib"

#: The Kubernetes version the built-in kinds are validated against: the oldest the overlays
#: are meant for (Kubeflow 1.10 supports 1.31 and newer); kubernetes-validate ships 1.25-1.37.
DEFAULT_KUBERNETES_VERSION = "1.31.0"

ORIGIN_ANNOTATION = "config.kubernetes.io/origin"
#: A Kaizen image whose digest CD has not set yet (overlays' `images:`).
PLACEHOLDER_DIGEST = "sha256:" + "0" * 64
_DIGEST_IMAGE = re.compile(r"^[^@\s]+@sha256:[0-9a-f]{64}$")
#: Secret and ConfigMap keys, as the API server checks them.
_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")
_ISVC_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")

#: API groups whose kinds kubernetes-validate knows (everything else is a custom resource).
BUILTIN_GROUPS = frozenset(
    {
        "",
        "admissionregistration.k8s.io",
        "apps",
        "autoscaling",
        "batch",
        "certificates.k8s.io",
        "coordination.k8s.io",
        "discovery.k8s.io",
        "events.k8s.io",
        "networking.k8s.io",
        "node.k8s.io",
        "policy",
        "rbac.authorization.k8s.io",
        "scheduling.k8s.io",
        "storage.k8s.io",
    }
)

#: Volume types Pod Security Standards ``restricted`` allows.
RESTRICTED_VOLUME_TYPES = frozenset(
    {
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    }
)
#: Sysctls Pod Security Standards ``baseline`` (and so ``restricted``) allows.
SAFE_SYSCTLS = frozenset(
    {
        "kernel.shm_rmid_forced",
        "net.ipv4.ip_local_port_range",
        "net.ipv4.ip_unprivileged_port_start",
        "net.ipv4.tcp_syncookies",
        "net.ipv4.ping_group_range",
        "net.ipv4.ip_local_reserved_ports",
        "net.ipv4.tcp_keepalive_time",
        "net.ipv4.tcp_fin_timeout",
        "net.ipv4.tcp_keepalive_intvl",
        "net.ipv4.tcp_keepalive_probes",
    }
)
#: KServe's autoscaler classes (``serving.kserve.io/autoscalerClass``).
KSERVE_AUTOSCALER_CLASSES = ("hpa", "external", "none", "keda")
KSERVE_DEPLOYMENT_MODES = ("Standard", "RawDeployment", "Knative", "Serverless", "ModelMesh")
#: InferenceService predictor fields that each name one implementation (the webhook allows one).
KSERVE_PREDICTOR_IMPLEMENTATIONS = (
    "sklearn",
    "xgboost",
    "tensorflow",
    "pytorch",
    "triton",
    "onnx",
    "huggingface",
    "pmml",
    "lightgbm",
    "paddle",
    "model",
)
KSERVE_COMPONENTS = ("predictor", "transformer", "explainer")
_OBJECT_META_FIELDS = frozenset(
    {"name", "namespace", "labels", "annotations", "generateName", "finalizers", "ownerReferences"}
)


class ToolError(RuntimeError):
    """A tool the check needs is missing or failed (exit status 2)."""


@dataclass(frozen=True)
class Document:
    """One object of a rendered overlay (or of a file), with where it came from.

    Attributes:
        body: the object, origin annotation removed.
        source: the file it was defined in, relative to the repository.
        scope: the overlay (``overlays/dev``) or the file the object was read from.
    """

    body: dict[str, Any]
    source: str
    scope: str

    @property
    def label(self) -> str:
        """``Kind/name``."""
        metadata = self.body.get("metadata") or {}
        return f"{self.body.get('kind', '?')}/{metadata.get('name', '?')}"


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one object, printed as one line."""

    document: Document
    field: str
    message: str

    def __str__(self) -> str:
        return (
            f"{self.document.scope}: {self.document.label} ({self.document.source}): "
            f"{self.field}: {self.message}"
        )


@dataclass
class CheckovResult:
    """What checkov said about one rendered overlay."""

    passed: int = 0
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ rendering


def prepare_tree(source: Path, destination: Path, examples: bool = True) -> Path:
    """Copy ``manifests/`` for rendering: example credentials, origin annotations on.

    Args:
        source: the ``manifests`` folder.
        destination: an empty folder; the copy is made at ``destination/manifests``.
        examples: write each overlay's ``credentials.env`` from its example (without the
            guard line); False keeps the ``credentials.env`` files of ``source`` (tests of
            what an unedited copy would do).

    Returns:
        The copy's ``manifests`` folder.
    """
    tree = destination / "manifests"
    ignored = ("credentials.env", "*.py") if examples else ("*.py",)
    shutil.copytree(source, tree, ignore=shutil.ignore_patterns(*ignored))
    for overlay in sorted((tree / "overlays").iterdir()):
        example = overlay / "credentials.env.example"
        if examples and example.is_file():
            (overlay / "credentials.env").write_text(
                "".join(
                    line
                    for line in example.read_text(encoding="utf-8").splitlines(keepends=True)
                    if not is_guard_line(line)
                ),
                encoding="utf-8",
            )
        kustomization = overlay / "kustomization.yaml"
        if kustomization.is_file():
            body = yaml.safe_load(kustomization.read_text(encoding="utf-8")) or {}
            metadata = body.setdefault("buildMetadata", [])
            if "originAnnotations" not in metadata:
                metadata.append("originAnnotations")
            kustomization.write_text(yaml.safe_dump(body, sort_keys=False), encoding="utf-8")
    return tree


def is_guard_line(line: str) -> bool:
    """Whether an env-file line is the example's guard (neither a comment nor ``KEY=value``)."""
    text = line.strip()
    return bool(text) and not text.startswith("#") and "=" not in text


def kubectl_kustomize(overlay: Path, kubectl: str = "kubectl") -> str:
    """Render an overlay with ``kubectl kustomize``.

    Args:
        overlay: the overlay folder.
        kubectl: the kubectl program.

    Returns:
        The rendered YAML.

    Raises:
        ToolError: kubectl is missing, or kustomize refused the overlay (its message).
    """
    if shutil.which(kubectl) is None:
        raise ToolError(f"{kubectl} not found: `kubectl kustomize` renders the overlays")
    result = subprocess.run(
        [kubectl, "kustomize", str(overlay)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ToolError(f"kubectl kustomize {overlay.name} failed: {result.stderr.strip()}")
    return result.stdout


def parse_rendered(text: str, scope: str, overlay: Path, tree: Path) -> list[Document]:
    """Split rendered YAML into documents, each with its source file (origin annotation).

    Args:
        text: ``kubectl kustomize`` output.
        scope: names the overlay in problems.
        overlay: the overlay folder the paths in origin annotations are relative to.
        tree: the ``manifests`` folder the reported sources are made relative to.

    Returns:
        The documents, origin annotations removed (and empty annotation maps with them).
    """
    documents = []
    for body in yaml.safe_load_all(text):
        if not body:
            continue
        source = "?"
        annotations = (body.get("metadata") or {}).get("annotations") or {}
        origin_text = annotations.pop(ORIGIN_ANNOTATION, None)
        if not annotations and "annotations" in (body.get("metadata") or {}):
            del body["metadata"]["annotations"]
        if origin_text:
            origin = yaml.safe_load(origin_text) or {}
            path = origin.get("path") or origin.get("configuredIn")
            if path:
                resolved = (overlay / path).resolve()
                try:
                    source = "manifests/" + str(resolved.relative_to(tree.resolve()))
                except ValueError:
                    source = str(path)
        documents.append(Document(body=body, source=source, scope=scope))
    return documents


def render_overlays(
    manifests: Path, workdir: Path, kubectl: str = "kubectl", examples: bool = True
) -> dict[str, list[Document]]:
    """Render every overlay of ``manifests`` (in a prepared copy under ``workdir``).

    Args:
        manifests: the ``manifests`` folder.
        workdir: an empty scratch folder.
        kubectl: the kubectl program.
        examples: render with the example credentials (see :func:`prepare_tree`).

    Returns:
        ``overlays/<name>`` -> its documents.
    """
    tree = prepare_tree(manifests, workdir, examples)
    rendered = {}
    for overlay in sorted(path for path in (tree / "overlays").iterdir() if path.is_dir()):
        scope = f"overlays/{overlay.name}"
        rendered[scope] = parse_rendered(kubectl_kustomize(overlay, kubectl), scope, overlay, tree)
    return rendered


def load_file_documents(path: Path, repository: Path = REPOSITORY) -> list[Document]:
    """Read the objects of one YAML file (a Katib Experiment, say) as documents."""
    try:
        relative = str(path.resolve().relative_to(repository.resolve()))
    except ValueError:
        relative = str(path)
    return [
        Document(body=body, source=relative, scope=relative)
        for body in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        if body
    ]


# ------------------------------------------------------------------------- schemas


def _field_path(parts: Iterable[Any]) -> str:
    text = ""
    for part in parts:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "<root>"


def builtin_problems(document: Document, kubernetes_version: str) -> list[Problem]:
    """Validate a built-in kind with kubernetes-validate, strict (unknown fields refused)."""
    import kubernetes_validate
    from kubernetes_validate.utils import SchemaNotFoundError

    try:
        kubernetes_validate.validate(document.body, kubernetes_version, strict=True)
    except kubernetes_validate.ValidationError as error:
        return [Problem(document, _field_path(error.path), _schema_message(error))]
    except SchemaNotFoundError:
        return [
            Problem(
                document,
                "apiVersion",
                f"Kubernetes {kubernetes_version} has no kind {document.body.get('kind')} in "
                f"{document.body.get('apiVersion')}",
            )
        ]
    return []


def _schema_message(error: Any) -> str:
    if error.validator == "additionalProperties":
        unexpected = sorted(set(error.instance) - set(error.schema.get("properties") or {}))
        return f"unknown field(s) {unexpected}"
    return str(error.message)


def strict_schema(schema: Any) -> Any:
    """A copy of a CRD schema where objects refuse fields they do not declare.

    ``additionalProperties: false`` is added to every object schema with ``properties`` and
    neither ``additionalProperties`` nor ``x-kubernetes-preserve-unknown-fields: true``.
    """
    if isinstance(schema, list):
        return [strict_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: strict_schema(value) for key, value in schema.items()}
    if (
        "properties" in result
        and "additionalProperties" not in result
        and not result.get("x-kubernetes-preserve-unknown-fields")
    ):
        result["additionalProperties"] = False
    return result


@dataclass(frozen=True)
class CustomResourceSchemas:
    """The strict schemas of the CRDs in a folder, by (apiVersion, kind)."""

    schemas: Mapping[tuple[str, str], dict[str, Any]]
    files: Mapping[tuple[str, str], str]

    @classmethod
    def load(cls, folder: Path = CRD_DIR) -> CustomResourceSchemas:
        """Read every ``*.yaml`` CRD in ``folder``."""
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        schemas: dict[tuple[str, str], dict[str, Any]] = {}
        files: dict[tuple[str, str], str] = {}
        for path in sorted(folder.glob("*.yaml")):
            for crd in yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                group = crd["spec"]["group"]
                kind = crd["spec"]["names"]["kind"]
                for version in crd["spec"]["versions"]:
                    key = (f"{group}/{version['name']}", kind)
                    schemas[key] = strict_schema(version["schema"]["openAPIV3Schema"])
                    files[key] = path.name
        return cls(schemas=schemas, files=files)

    def problems(self, document: Document) -> list[Problem]:
        """Validate a custom resource against its CRD (strict); unknown kinds are refused."""
        from jsonschema import Draft7Validator

        key = (str(document.body.get("apiVersion")), str(document.body.get("kind")))
        schema = self.schemas.get(key)
        if schema is None:
            known = sorted(f"{api} {kind}" for api, kind in self.schemas)
            return [
                Problem(
                    document,
                    "apiVersion",
                    f"no CRD for {key[0]} {key[1]} in {CRD_DIR.name}/ (known: {known})",
                )
            ]
        problems = [
            Problem(document, _field_path(error.absolute_path), _schema_message(error))
            for error in sorted(
                Draft7Validator(schema).iter_errors(document.body),
                key=lambda error: list(map(str, error.absolute_path)),
            )
        ]
        metadata = document.body.get("metadata") or {}
        problems += [
            Problem(document, f"metadata.{name}", "unknown field (not in meta/v1 ObjectMeta)")
            for name in sorted(set(metadata) - _OBJECT_META_FIELDS)
        ]
        return problems


# ------------------------------------------------------------------- pod specifications


@dataclass(frozen=True)
class PodSpec:
    """A pod specification found inside an object.

    Attributes:
        path: its field path in the object.
        spec: the pod specification (for an InferenceService component, the component).
        serves: whether its containers answer requests (then they need probes).
    """

    path: str
    spec: Mapping[str, Any]
    serves: bool


def pod_specs(body: Mapping[str, Any]) -> list[PodSpec]:
    """Every pod specification in an object, with whether it serves requests."""
    kind = body.get("kind")
    spec = body.get("spec") or {}
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"):
        return [PodSpec("spec.template.spec", (spec.get("template") or {}).get("spec") or {}, True)]
    if kind == "Job":
        return [
            PodSpec("spec.template.spec", (spec.get("template") or {}).get("spec") or {}, False)
        ]
    if kind == "CronJob":
        template = ((spec.get("jobTemplate") or {}).get("spec") or {}).get("template") or {}
        return [PodSpec("spec.jobTemplate.spec.template.spec", template.get("spec") or {}, False)]
    if kind == "Pod":
        return [PodSpec("spec", spec, False)]
    if kind == "InferenceService":
        return [
            PodSpec(f"spec.{name}", spec[name], True)
            for name in KSERVE_COMPONENTS
            if isinstance(spec.get(name), dict)
        ]
    if kind == "Experiment":
        trial = (spec.get("trialTemplate") or {}).get("trialSpec") or {}
        if trial.get("kind") == "Job":
            template = (trial.get("spec") or {}).get("template") or {}
            return [
                PodSpec(
                    "spec.trialTemplate.trialSpec.spec.template.spec",
                    template.get("spec") or {},
                    False,
                )
            ]
    return []


def _containers(pod: Mapping[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for group in ("initContainers", "containers", "ephemeralContainers"):
        for index, container in enumerate(pod.get(group) or []):
            yield f"{group}[{index}]", container


def restricted_problems(document: Document, pod: PodSpec) -> list[Problem]:
    """Pod Security Standards ``restricted`` (the checks the admission controller makes)."""
    spec = pod.spec
    problems: list[Problem] = []

    def add(where: str, message: str) -> None:
        problems.append(Problem(document, f"{pod.path}.{where}" if where else pod.path, message))

    for name in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(name):
            add(name, "must be false or unset (restricted)")
    pod_context = spec.get("securityContext") or {}
    for index, volume in enumerate(spec.get("volumes") or []):
        kinds = sorted(set(volume) - {"name"})
        if any(kind not in RESTRICTED_VOLUME_TYPES for kind in kinds):
            add(
                f"volumes[{index}]",
                f"volume type {kinds} is not allowed (restricted allows "
                f"{sorted(RESTRICTED_VOLUME_TYPES)})",
            )
    for index, sysctl in enumerate(pod_context.get("sysctls") or []):
        if sysctl.get("name") not in SAFE_SYSCTLS:
            add(f"securityContext.sysctls[{index}]", f"unsafe sysctl {sysctl.get('name')!r}")
    if pod_context.get("runAsUser") == 0:
        add("securityContext.runAsUser", "must not be 0 (root)")
    pod_seccomp = (pod_context.get("seccompProfile") or {}).get("type")
    if pod_seccomp is not None and pod_seccomp not in ("RuntimeDefault", "Localhost"):
        add("securityContext.seccompProfile.type", f"must be RuntimeDefault, got {pod_seccomp!r}")
    containers = list(_containers(spec))
    if not containers:
        add("containers", "required: a pod needs at least one container")
    for where, container in containers:
        context = container.get("securityContext") or {}
        if context.get("privileged"):
            add(f"{where}.securityContext.privileged", "must be false or unset (restricted)")
        if context.get("allowPrivilegeEscalation") is not False:
            add(
                f"{where}.securityContext.allowPrivilegeEscalation",
                f"must be false (restricted), got {context.get('allowPrivilegeEscalation')!r}",
            )
        capabilities = context.get("capabilities") or {}
        if "ALL" not in (capabilities.get("drop") or []):
            add(
                f"{where}.securityContext.capabilities.drop",
                f"must contain ALL (restricted), got {capabilities.get('drop')!r}",
            )
        added = [cap for cap in capabilities.get("add") or [] if cap != "NET_BIND_SERVICE"]
        if added:
            add(
                f"{where}.securityContext.capabilities.add",
                f"only NET_BIND_SERVICE may be added (restricted), got {added}",
            )
        run_as_non_root = context.get("runAsNonRoot", pod_context.get("runAsNonRoot"))
        if run_as_non_root is not True:
            add(
                f"{where}.securityContext.runAsNonRoot",
                "must be true here or in the pod's securityContext (restricted)",
            )
        if context.get("runAsUser") == 0:
            add(f"{where}.securityContext.runAsUser", "must not be 0 (root)")
        seccomp = (context.get("seccompProfile") or {}).get("type") or pod_seccomp
        if seccomp not in ("RuntimeDefault", "Localhost"):
            add(
                f"{where}.securityContext.seccompProfile",
                "type RuntimeDefault (or Localhost) is required here or in the pod's "
                f"securityContext (restricted), got {seccomp!r}",
            )
        if context.get("procMount") not in (None, "Default"):
            add(f"{where}.securityContext.procMount", "must be Default (restricted)")
        for index, port in enumerate(container.get("ports") or []):
            if port.get("hostPort"):
                add(f"{where}.ports[{index}].hostPort", "must be unset (restricted)")
    return problems


def hardening_problems(document: Document, pod: PodSpec) -> list[Problem]:
    """Kaizen's own rules: resources, probes on serving containers, read-only root."""
    problems: list[Problem] = []
    for where, container in _containers(pod.spec):
        if where.startswith("ephemeralContainers"):
            continue
        prefix = f"{pod.path}.{where}"
        resources = container.get("resources") or {}
        for section in ("requests", "limits"):
            for resource in ("cpu", "memory"):
                if not (resources.get(section) or {}).get(resource):
                    problems.append(
                        Problem(
                            document,
                            f"{prefix}.resources.{section}.{resource}",
                            "required (every container declares its requests and limits)",
                        )
                    )
        if pod.serves and where.startswith("containers"):
            for probe in ("readinessProbe", "livenessProbe"):
                if not container.get(probe):
                    problems.append(
                        Problem(document, f"{prefix}.{probe}", "required for a serving container")
                    )
        if (container.get("securityContext") or {}).get("readOnlyRootFilesystem") is not True:
            problems.append(
                Problem(
                    document,
                    f"{prefix}.securityContext.readOnlyRootFilesystem",
                    "must be true (writable paths are emptyDir volumes)",
                )
            )
    return problems


def image_problems(document: Document, pod: PodSpec, require_built_images: bool) -> list[Problem]:
    """Every image by digest; with ``require_built_images``, no placeholder digest either."""
    problems = []
    for where, container in _containers(pod.spec):
        image = str(container.get("image") or "")
        if not _DIGEST_IMAGE.match(image):
            problems.append(
                Problem(
                    document,
                    f"{pod.path}.{where}.image",
                    f"must be pinned by digest (<name>@sha256:<64 hex>), got {image!r}",
                )
            )
        elif require_built_images and image.endswith(PLACEHOLDER_DIGEST):
            problems.append(
                Problem(
                    document,
                    f"{pod.path}.{where}.image",
                    f"{image!r} is the placeholder digest: set the built image's with "
                    "`kustomize edit set image`",
                )
            )
    return problems


# ------------------------------------------------------------------ webhook rules


def inference_service_problems(document: Document) -> list[Problem]:
    """What KServe's InferenceService webhook refuses and its CRD does not.

    Follows ``pkg/apis/serving/v1beta1/inference_service_validation.go`` and
    ``component.go`` of KServe 0.20: the name, the autoscaler class, exactly one
    implementation per component, replicas, container concurrency, HPA metrics in Standard
    mode; plus one rule of ours: no ``canaryTrafficPercent`` (the canary runs in our server,
    and KServe honours the field only in Knative mode).
    """
    body = document.body
    metadata = body.get("metadata") or {}
    annotations = metadata.get("annotations") or {}
    spec = body.get("spec") or {}
    problems: list[Problem] = []

    def add(where: str, message: str) -> None:
        problems.append(Problem(document, where, message))

    name = str(metadata.get("name", ""))
    if not _ISVC_NAME.match(name):
        add("metadata.name", f"{name!r} must match {_ISVC_NAME.pattern} (KServe's webhook)")
    autoscaler = annotations.get("serving.kserve.io/autoscalerClass")
    if autoscaler is not None and autoscaler not in KSERVE_AUTOSCALER_CLASSES:
        add(
            "metadata.annotations.serving.kserve.io/autoscalerClass",
            f"{autoscaler!r} is not one of {list(KSERVE_AUTOSCALER_CLASSES)}",
        )
    mode = annotations.get("serving.kserve.io/deploymentMode")
    if mode is not None and mode not in KSERVE_DEPLOYMENT_MODES:
        add(
            "metadata.annotations.serving.kserve.io/deploymentMode",
            f"{mode!r} is not one of {list(KSERVE_DEPLOYMENT_MODES)}",
        )
    if "predictor" not in spec:
        add("spec.predictor", "required field is missing")
    for component in KSERVE_COMPONENTS:
        section = spec.get(component)
        if not isinstance(section, dict):
            continue
        where = f"spec.{component}"
        implementations = [key for key in KSERVE_PREDICTOR_IMPLEMENTATIONS if key in section]
        if section.get("containers"):
            implementations.append("containers")
        if component == "predictor" and len(implementations) != 1:
            add(
                where,
                "exactly one implementation must be set (a model format, a framework or "
                f"containers), got {implementations or 'none'}",
            )
        minimum = section.get("minReplicas", 1)
        maximum = section.get("maxReplicas", 0)
        if isinstance(minimum, int) and minimum < 0:
            add(f"{where}.minReplicas", "cannot be less than 0")
        if isinstance(maximum, int) and maximum < 0:
            add(f"{where}.maxReplicas", "cannot be less than 0")
        if isinstance(minimum, int) and isinstance(maximum, int) and 0 < maximum < minimum:
            add(f"{where}.minReplicas", f"{minimum} is greater than maxReplicas {maximum}")
        concurrency = section.get("containerConcurrency")
        if isinstance(concurrency, int) and concurrency < 0:
            add(f"{where}.containerConcurrency", "cannot be less than 0")
        if "canaryTrafficPercent" in section:
            add(
                f"{where}.canaryTrafficPercent",
                "not used here: the canary runs inside Kaizen's server (KServe honours this "
                "field only in Knative mode)",
            )
        metric = section.get("scaleMetric")
        if mode in ("Standard", "RawDeployment") and autoscaler in (None, "hpa"):
            metric = metric or "cpu"
            if metric not in ("cpu", "memory"):
                add(f"{where}.scaleMetric", f"HPA scales on cpu or memory, got {metric!r}")
            target = section.get("scaleTarget")
            if metric == "cpu" and isinstance(target, int) and not 1 <= target <= 100:
                add(f"{where}.scaleTarget", "the target utilization must be within [1, 100]")
        if component == "predictor" and implementations == ["containers"]:
            containers = section["containers"]
            for index, container in enumerate(containers):
                for variable in container.get("env") or []:
                    if variable.get("name") == "PROTOCOL" and variable.get("value") not in (
                        "v1",
                        "v2",
                    ):
                        add(
                            f"{where}.containers[{index}].env",
                            f"PROTOCOL must be v1 or v2, got {variable.get('value')!r}",
                        )
            if len(containers) > 1 and containers[0].get("name") != "kserve-container":
                add(
                    f"{where}.containers[0].name",
                    "with several containers the first must be kserve-container",
                )
    return problems


def experiment_problems(document: Document) -> list[Problem]:
    """Katib's Experiment rules, as ``kaizen.tuning.spec`` checks them."""
    from kaizen.tuning.spec import ExperimentSpecError, validate_experiment

    try:
        validate_experiment(document.body, document.source)
    except ExperimentSpecError as error:
        problems = []
        for problem in error.problems:
            where, _, message = problem.partition(": ")
            problems.append(Problem(document, where, message))
        return problems
    return []


def config_key_problems(document: Document) -> list[Problem]:
    """Secret and ConfigMap keys the API server accepts."""
    problems = []
    for section in ("data", "stringData", "binaryData"):
        for key in document.body.get(section) or {}:
            if not _CONFIG_KEY.match(str(key)):
                problems.append(
                    Problem(
                        document,
                        f"{section}[{key!r}]",
                        "not a valid key (alphanumerics, '-', '_' or '.'; the API server "
                        "refuses it): is this the example file's guard line?",
                    )
                )
    return problems


def rbac_problems(document: Document) -> list[Problem]:
    """Namespaced RBAC only, and no wildcard in a rule."""
    kind = document.body.get("kind")
    if kind in ("ClusterRole", "ClusterRoleBinding"):
        return [Problem(document, "kind", "cluster-wide RBAC is not allowed: use a Role")]
    problems = []
    if kind == "Role":
        for index, rule in enumerate(document.body.get("rules") or []):
            for name in ("apiGroups", "resources", "verbs"):
                if "*" in (rule.get(name) or []):
                    problems.append(
                        Problem(document, f"rules[{index}].{name}", "no wildcards: name each one")
                    )
    if kind == "RoleBinding":
        role = (document.body.get("roleRef") or {}).get("kind")
        if role != "Role":
            problems.append(Problem(document, "roleRef.kind", f"must be Role, got {role!r}"))
    return problems


# --------------------------------------------------------------------------- checks


def check_documents(
    documents: Sequence[Document],
    crds: CustomResourceSchemas,
    kubernetes_version: str = DEFAULT_KUBERNETES_VERSION,
    require_built_images: bool = False,
    pinned_images: bool = True,
) -> list[Problem]:
    """Every check but checkov, on the objects of one overlay (or file).

    Args:
        documents: the objects.
        crds: the CRD schemas for custom resources.
        kubernetes_version: the version the built-in kinds are validated against.
        require_built_images: refuse the placeholder digest of Kaizen's images.
        pinned_images: require images by digest (the Katib files' trial image is set per
            run by the tune task, so they are checked without it).

    Returns:
        The problems, in document order.
    """
    problems: list[Problem] = []
    for document in documents:
        api_version = str(document.body.get("apiVersion", ""))
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        if group in BUILTIN_GROUPS:
            problems += builtin_problems(document, kubernetes_version)
        else:
            problems += crds.problems(document)
        for pod in pod_specs(document.body):
            problems += restricted_problems(document, pod)
            problems += hardening_problems(document, pod)
            if pinned_images:
                problems += image_problems(document, pod, require_built_images)
        kind = document.body.get("kind")
        if kind == "InferenceService":
            problems += inference_service_problems(document)
        elif kind == "Experiment":
            problems += experiment_problems(document)
        elif kind in ("Secret", "ConfigMap"):
            problems += config_key_problems(document)
        elif kind in ("Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding"):
            problems += rbac_problems(document)
    return problems


def run_checkov(checkov: str, rendered: Sequence[Document], workdir: Path) -> CheckovResult:
    """Run checkov (``--framework kubernetes``) on one rendered overlay.

    Args:
        checkov: the checkov program.
        rendered: the overlay's objects.
        workdir: where the rendered file is written.

    Returns:
        Counts of passed checks, and the failed and skipped ones (``CKV_K8S_n Kind/name``).

    Raises:
        ToolError: checkov is missing or did not produce a report.
    """
    program = shutil.which(checkov)
    program = str(Path(program).resolve()) if program else None
    if program is None:
        raise ToolError(
            f"checkov not found at {checkov!r}: `make manifests-check` installs it into "
            ".venv-tools (docker/lint-requirements.txt)"
        )
    path = workdir / "rendered.yaml"
    path.write_text(yaml.safe_dump_all([doc.body for doc in rendered]), encoding="utf-8")
    command = [
        program,
        "--framework",
        "kubernetes",
        "--file",
        str(path),
        "--output",
        "json",
        "--compact",
        "--skip-download",
    ]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=workdir)
    try:
        report = json.loads(result.stdout)
    except json.JSONDecodeError:
        raise ToolError(f"checkov gave no JSON report: {result.stderr.strip()[-2000:]}") from None
    reports = report if isinstance(report, list) else [report]
    outcome = CheckovResult()
    for entry in reports:
        if not isinstance(entry, dict):
            continue
        results = entry.get("results") or {}
        summary = entry.get("summary") or {}
        outcome.passed += int(summary.get("passed", 0))
        for check in results.get("failed_checks") or []:
            outcome.failed.append(f"{check['check_id']} {check['resource']}: {check['check_name']}")
        for check in results.get("skipped_checks") or []:
            outcome.skipped.append(
                f"{check['check_id']} {check['resource']}: "
                f"{(check.get('check_result') or {}).get('suppress_comment', '')}"
            )
    return outcome


def main(argv: Sequence[str] | None = None) -> int:
    """Run every check on every overlay and on ``katib/*.yaml``; print one line per problem."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--manifests", type=Path, default=MANIFESTS)
    parser.add_argument("--katib", type=Path, default=KATIB_DIR)
    parser.add_argument("--crds", type=Path, default=CRD_DIR)
    parser.add_argument("--kubernetes-version", default=DEFAULT_KUBERNETES_VERSION)
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument(
        "--checkov", default=None, help="checkov program; without it checkov is not run"
    )
    parser.add_argument(
        "--require-built-images",
        action="store_true",
        help="refuse the placeholder digest of Kaizen's images (CD, after set image)",
    )
    options = parser.parse_args(argv)
    started = time.monotonic()
    problems: list[str] = []
    try:
        crds = CustomResourceSchemas.load(options.crds)
        with tempfile.TemporaryDirectory(prefix="kaizen-manifests-") as scratch:
            workdir = Path(scratch)
            rendered = render_overlays(options.manifests, workdir, options.kubectl)
            for scope, documents in rendered.items():
                found = check_documents(
                    documents,
                    crds,
                    options.kubernetes_version,
                    require_built_images=options.require_built_images,
                )
                problems += [str(problem) for problem in found]
                line = f"{scope}: {len(documents)} objects, {len(found)} problems"
                if options.checkov:
                    outcome = run_checkov(options.checkov, documents, workdir)
                    problems += [f"{scope}: checkov: {failed}" for failed in outcome.failed]
                    line += (
                        f"; checkov {outcome.passed} passed, {len(outcome.failed)} failed, "
                        f"{len(outcome.skipped)} skipped"
                    )
                    for skipped in outcome.skipped:
                        line += f"\n  skipped {skipped}"
                print(line)
        for path in sorted(options.katib.glob("*.yaml")):
            documents = load_file_documents(path)
            found = check_documents(
                documents, crds, options.kubernetes_version, pinned_images=False
            )
            problems += [str(problem) for problem in found]
            print(f"{documents[0].scope if documents else path}: {len(found)} problems")
    except ToolError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for problem in problems:
        print(problem, file=sys.stderr)
    print(
        f"manifests-check: {len(problems)} problems "
        f"(Kubernetes {options.kubernetes_version}, {time.monotonic() - started:.1f} s)"
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPOSITORY))
    raise SystemExit(main())
