"""The kustomize overlays, rendered with `kubectl kustomize`, as the cluster would take them.

Each overlay is rendered from a copy of ``manifests/`` by ``manifests/check.py`` (example
credentials, never real ones). The tests assert what an operator would notice: pods that the
``restricted`` namespace would refuse, a credential in the repository, an image that can
change under the same name, RBAC that reaches beyond the namespace, a variable a step needs
that no ConfigMap or Secret sets; and that the check refuses broken manifests with a message
naming the file, the object and the field.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from manifests import check

REPOSITORY = Path(__file__).resolve().parents[2]
MANIFESTS = REPOSITORY / "manifests"
OVERLAYS = ("overlays/dev", "overlays/prod")
KAIZEN_IMAGES = ("ghcr.io/kaizen-mlops/kaizen-component", "ghcr.io/kaizen-mlops/kaizen-serving")
# What the tracking server alone reads (not a setting of any task).
SERVER_ONLY_VARIABLES = {"MLFLOW_S3_ENDPOINT_URL", "MLFLOW_BACKEND_STORE_URI"}


@pytest.fixture(scope="module")
def crds() -> check.CustomResourceSchemas:
    return check.CustomResourceSchemas.load()


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[check.Document]]:
    return check.render_overlays(MANIFESTS, tmp_path_factory.mktemp("render"))


def render_edited(
    tmp_path: Path, edit: Callable[[Path], None], examples: bool = True
) -> dict[str, list[check.Document]]:
    """Render every overlay of a copy of ``manifests/`` after ``edit(copy)``."""
    source = tmp_path / "source" / "manifests"
    shutil.copytree(MANIFESTS, source, ignore=shutil.ignore_patterns("credentials.env"))
    edit(source)
    return check.render_overlays(source, tmp_path / "work", examples=examples)


def edit_yaml(path: Path, change: Callable[[list[dict[str, Any]]], None]) -> None:
    documents = list(yaml.safe_load_all(path.read_text(encoding="utf-8")))
    change(documents)
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False), encoding="utf-8")


def problems_of(
    rendered: dict[str, list[check.Document]], crds: check.CustomResourceSchemas
) -> list[str]:
    return [
        str(problem)
        for documents in rendered.values()
        for problem in check.check_documents(documents, crds)
    ]


def find(documents: list[check.Document], kind: str, name: str) -> dict[str, Any]:
    for document in documents:
        body = document.body
        if body.get("kind") == kind and body["metadata"]["name"] == name:
            return body
    raise AssertionError(f"no {kind}/{name} in {[d.label for d in documents]}")


def containers(documents: list[check.Document]) -> Iterator[tuple[str, dict[str, Any], Any]]:
    for document in documents:
        for pod in check.pod_specs(document.body):
            for group in ("initContainers", "containers"):
                for container in pod.spec.get(group) or []:
                    yield document.label, container, pod


# ------------------------------------------------------------------------ the overlays


def test_every_overlay_and_katib_file_passes_every_check(
    rendered: dict[str, list[check.Document]], crds: check.CustomResourceSchemas
) -> None:
    assert set(rendered) == set(OVERLAYS)
    assert problems_of(rendered, crds) == []
    for path in sorted((REPOSITORY / "katib").glob("*.yaml")):
        documents = check.load_file_documents(path)
        assert check.check_documents(documents, crds, pinned_images=False) == []


def test_dev_runs_its_own_stores_and_prod_uses_external_ones(
    rendered: dict[str, list[check.Document]],
) -> None:
    workloads = {
        name: sorted(
            d.label
            for d in documents
            if d.body["kind"] in ("Deployment", "StatefulSet", "Job", "InferenceService")
        )
        for name, documents in rendered.items()
    }
    assert workloads["overlays/dev"] == [
        "Deployment/feature-server",
        "Deployment/mlflow",
        "InferenceService/fraud-detector",
        "Job/bucket-setup",
        "StatefulSet/minio",
        "StatefulSet/redis",
    ]
    assert workloads["overlays/prod"] == [
        "Deployment/feature-server",
        "Deployment/kaizen-monitor",  # components/monitoring
        "Deployment/mlflow",
        "InferenceService/fraud-detector",
        "Job/bucket-setup",
    ]
    for name, documents in rendered.items():
        namespaces = {d.body["metadata"].get("namespace") for d in documents}
        assert namespaces == {"kaizen", None}, name  # None: the Namespace itself
        claims = {
            d.body["metadata"]["name"]
            for d in documents
            if d.body["kind"] == "PersistentVolumeClaim"
        }
        assert {"kaizen-tuning-data", "kaizen-feature-data"} <= claims
        for claim in ("kaizen-tuning-data", "kaizen-feature-data"):
            assert find(documents, "PersistentVolumeClaim", claim)["spec"]["accessModes"] == [
                "ReadWriteMany"
            ]
    prod_config = find(rendered["overlays/prod"], "ConfigMap", "kaizen-config")["data"]
    assert prod_config["KAIZEN_S3_ENDPOINT"] == "minio-service.kubeflow.svc.cluster.local:9000"
    prod_mlflow = find(rendered["overlays/prod"], "Deployment", "mlflow")
    env = {e["name"]: e for e in prod_mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["MLFLOW_BACKEND_STORE_URI"]["valueFrom"]["secretKeyRef"] == {
        "name": "kaizen-credentials",
        "key": "MLFLOW_BACKEND_STORE_URI",
    }
    dev_mlflow = find(rendered["overlays/dev"], "Deployment", "mlflow")
    dev_env = {e["name"]: e for e in dev_mlflow["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert dev_env["MLFLOW_BACKEND_STORE_URI"]["value"].startswith("sqlite:////var/lib/mlflow/")
    assert dev_env["MLFLOW_ARTIFACTS_DESTINATION"]["value"] == "s3://$(KAIZEN_S3_BUCKET)/mlflow"


def test_namespace_enforces_pod_security_restricted(
    rendered: dict[str, list[check.Document]],
) -> None:
    for documents in rendered.values():
        labels = find(documents, "Namespace", "kaizen")["metadata"]["labels"]
        for mode in ("enforce", "audit", "warn"):
            assert labels[f"pod-security.kubernetes.io/{mode}"] == "restricted"


def test_every_pod_meets_restricted_with_resources_and_probes(
    rendered: dict[str, list[check.Document]],
) -> None:
    seen = 0
    for documents in rendered.values():
        for label, container, pod in containers(documents):
            seen += 1
            context = container["securityContext"]
            pod_context = pod.spec.get("securityContext") or {}
            assert context["allowPrivilegeEscalation"] is False, label
            assert context["capabilities"]["drop"] == ["ALL"], label
            assert "add" not in context["capabilities"], label
            assert context.get("runAsNonRoot", pod_context.get("runAsNonRoot")) is True, label
            seccomp = context.get("seccompProfile") or pod_context.get("seccompProfile")
            assert seccomp == {"type": "RuntimeDefault"}, label
            assert context["readOnlyRootFilesystem"] is True, label
            for section in ("requests", "limits"):
                assert set(container["resources"][section]) >= {"cpu", "memory"}, label
            if pod.serves:
                assert container["readinessProbe"] and container["livenessProbe"], label
            else:  # Jobs are batch pods: nothing to probe.
                assert "readinessProbe" not in container, label
            for volume in pod.spec.get("volumes") or []:
                assert "hostPath" not in volume, label
    assert seen == 6 + 5  # dev: 6 workloads of one container each; prod: 5 (with the monitor)


def test_katib_trial_pods_meet_restricted() -> None:
    for path in sorted((REPOSITORY / "katib").glob("*.yaml")):
        body = yaml.safe_load(path.read_text(encoding="utf-8"))
        pod = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        context = container["securityContext"]
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, path
        assert context["seccompProfile"] == {"type": "RuntimeDefault"}, path
        assert context["runAsNonRoot"] is True and context["runAsUser"] == 10001, path
        assert context["allowPrivilegeEscalation"] is False, path
        assert context["capabilities"]["drop"] == ["ALL"], path
        assert context["readOnlyRootFilesystem"] is True, path
        # The trial writes its model to --output-dir, which must be on a writable volume.
        output = next(a for a in container["command"] if a.startswith("--output-dir="))
        mounts = {m["mountPath"] for m in container["volumeMounts"]}
        assert any(output.split("=", 1)[1].startswith(mount) for mount in mounts), path


def test_images_are_pinned_by_digest_in_one_list_per_overlay(
    rendered: dict[str, list[check.Document]],
) -> None:
    for name, documents in rendered.items():
        kustomization = yaml.safe_load((MANIFESTS / name / "kustomization.yaml").read_text())
        listed = {entry["newName"]: entry["digest"] for entry in kustomization["images"]}
        for label, container, _ in containers(documents):
            image, _, digest = container["image"].partition("@")
            assert re.fullmatch(r"sha256:[0-9a-f]{64}", digest), (label, container["image"])
            assert listed[image] == digest, label
            if image in KAIZEN_IMAGES:
                assert digest == check.PLACEHOLDER_DIGEST  # CD sets the built image's
            else:
                assert digest != check.PLACEHOLDER_DIGEST, label
        # Every listed image is used (a stale entry would pin nothing).
        used = {c["image"].partition("@")[0] for _, c, _ in containers(documents)}
        assert set(listed) == used, name


def test_no_secret_value_is_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "manifests"],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert not [path for path in tracked if path.endswith("credentials.env")]
    for overlay in OVERLAYS:
        ignored = subprocess.run(
            ["git", "check-ignore", "-q", f"manifests/{overlay}/credentials.env"],
            cwd=REPOSITORY,
            check=False,
        )
        assert ignored.returncode == 0, f"manifests/{overlay}/credentials.env is not git-ignored"
    for path in MANIFESTS.rglob("*.yaml"):
        for body in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if body and body.get("kind") == "Secret":
                raise AssertionError(f"{path}: a Secret belongs in a git-ignored env file")
            for name, value in _literal_env(body):
                if re.search(r"PASSWORD|SECRET|ACCESS_KEY|TOKEN|CONNECTION", name):
                    raise AssertionError(f"{path}: {name} has a literal value {value!r}")
    for overlay in OVERLAYS:
        example = (MANIFESTS / overlay / "credentials.env.example").read_text(encoding="utf-8")
        for line in example.splitlines():
            if "=" in line and not line.startswith("#"):
                key, value = line.split("=", 1)
                assert "change-me" in value or "<" in value, (
                    f"{overlay}: {key} is not a placeholder"
                )


def _literal_env(body: Any) -> Iterator[tuple[str, str]]:
    if isinstance(body, dict):
        if isinstance(body.get("name"), str) and isinstance(body.get("value"), str):
            yield body["name"], body["value"]
        for value in body.values():
            yield from _literal_env(value)
    elif isinstance(body, list):
        for item in body:
            yield from _literal_env(item)


def test_the_check_never_reads_the_real_credentials(tmp_path: Path) -> None:
    def add_real_credentials(tree: Path) -> None:
        (tree / "overlays/dev/credentials.env").write_text("KAIZEN_S3_SECRET_KEY=the-real-one\n")

    source = tmp_path / "source" / "manifests"
    shutil.copytree(MANIFESTS, source)
    add_real_credentials(source)
    rendered = check.render_overlays(source, tmp_path / "work")
    secret = find(rendered["overlays/dev"], "Secret", "kaizen-credentials")
    assert "KAIZEN_S3_ACCESS_KEY" in secret["data"]
    assert "the-real-one" not in yaml.safe_dump(secret)


def test_rbac_is_namespaced_and_least_privilege(
    rendered: dict[str, list[check.Document]],
) -> None:
    for documents in rendered.values():
        kinds = {d.body["kind"] for d in documents}
        assert not kinds & {"ClusterRole", "ClusterRoleBinding"}
        role = find(documents, "Role", "kaizen-pipeline-runner")
        binding = find(documents, "RoleBinding", "kaizen-pipeline-runner")
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": "kaizen-pipeline-runner", "namespace": "kaizen"}
        ]
        assert binding["roleRef"]["kind"] == "Role"

        def allowed(
            group: str, resource: str, verb: str, name: str | None = None, role: Any = role
        ) -> bool:
            for rule in role["rules"]:
                names = rule.get("resourceNames")
                if (
                    group in rule["apiGroups"]
                    and resource in rule["resources"]
                    and verb in rule["verbs"]
                    and (names is None or name in names)
                ):
                    return True
            return False

        for verb in ("create", "get", "list", "watch", "delete"):
            assert allowed("kubeflow.org", "experiments", verb)
        assert allowed("kubeflow.org", "trials", "get")
        assert not allowed("kubeflow.org", "trials", "delete")
        assert allowed("serving.kserve.io", "inferenceservices", "patch")
        assert not allowed("serving.kserve.io", "inferenceservices", "delete")
        assert not allowed("serving.kserve.io", "inferenceservices", "create")
        assert allowed("", "pods", "list") and allowed("", "pods/log", "get")
        assert not allowed("", "pods", "create") and not allowed("", "pods/exec", "create")
        # Only KFP's own artifact Secret, and no Secret may be listed.
        assert allowed("", "secrets", "get", "mlpipeline-minio-artifact")
        assert not allowed("", "secrets", "get", "kaizen-credentials")
        assert not allowed("", "secrets", "list")
        for rule in role["rules"]:
            assert "*" not in rule["apiGroups"] + rule["resources"] + rule["verbs"]
        # The long-running workloads cannot call the API at all.
        workload = find(documents, "ServiceAccount", "kaizen-workload")
        assert workload["automountServiceAccountToken"] is False


def _feast_config_variables(config_path: str) -> set[str]:
    text = (REPOSITORY / config_path.removeprefix("/app/")).read_text(encoding="utf-8")
    body = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    return set(re.findall(r"\$\{([A-Z0-9_]+)\}", body))


def _needed_variables(config: dict[str, str]) -> set[str]:
    from pydantic import SecretStr

    from kaizen.rehearsal.environment import container_environment
    from pipelines.training_pipeline import REQUIRED_CONFIG, REQUIRED_CREDENTIALS

    # What the pipeline's containers were given when the pipeline ran in them (make rehearsal).
    rehearsal = container_environment(
        s3_endpoint="s3:9000",
        s3_access_key=SecretStr("a"),
        s3_secret_key=SecretStr("b"),
        mlflow_tracking_uri="http://mlflow:5000",
        redis_address="redis:6379",
        redis_password=SecretStr("c"),
    )
    return (
        set(rehearsal)
        | set(REQUIRED_CONFIG)
        | set(REQUIRED_CREDENTIALS)
        | _feast_config_variables(config["KAIZEN_FEAST_CONFIG"])
    )


def _provided(documents: list[check.Document]) -> tuple[dict[str, str], set[str]]:
    config = find(documents, "ConfigMap", "kaizen-config")["data"]
    secret = find(documents, "Secret", "kaizen-credentials")["data"]
    return config, set(secret)


def test_every_variable_the_steps_need_is_set(
    rendered: dict[str, list[check.Document]],
) -> None:
    from pipelines.training_pipeline import config_map_keys, secret_keys

    for name, documents in rendered.items():
        config, secret = _provided(documents)
        missing = _needed_variables(config) - set(config) - secret
        assert not missing, f"{name}: no ConfigMap or Secret key for {sorted(missing)}"
        # Every key is one the pipeline maps into its tasks (or the tracking server's own).
        assert set(config) - SERVER_ONLY_VARIABLES <= set(config_map_keys()), name
        assert secret - SERVER_ONLY_VARIABLES <= set(secret_keys()), name
        # Credentials only in the Secret.
        for key in ("KAIZEN_S3_ACCESS_KEY", "KAIZEN_S3_SECRET_KEY", "AWS_SECRET_ACCESS_KEY"):
            assert key in secret and key not in config, name
        assert "KAIZEN_REDIS_CONNECTION" in secret and "KAIZEN_REDIS_CONNECTION" not in config


def test_the_spark_component_sets_what_envs_cluster_expands(
    tmp_path: Path, crds: check.CustomResourceSchemas
) -> None:
    def add_component(tree: Path) -> None:
        path = tree / "overlays/prod/kustomization.yaml"
        body = yaml.safe_load(path.read_text())
        body["components"] = ["../../components/feast-spark"]
        path.write_text(yaml.safe_dump(body, sort_keys=False))

    rendered = render_edited(tmp_path, add_component)
    documents = rendered["overlays/prod"]
    config, secret = _provided(documents)
    assert config["KAIZEN_FEAST_CONFIG"].endswith("envs/cluster/feature_store.yaml")
    missing = _needed_variables(config) - set(config) - secret
    assert not missing
    assert check.check_documents(documents, crds) == []


# ------------------------------------------------------------- broken manifests refused


def test_an_unknown_inference_service_field_is_refused(
    tmp_path: Path, crds: check.CustomResourceSchemas
) -> None:
    def typo(tree: Path) -> None:
        def change(documents: list[dict[str, Any]]) -> None:
            documents[0]["spec"]["predictor"]["containers"][0]["imagePullPolicyy"] = "Always"

        edit_yaml(tree / "base/inference-service.yaml", change)

    problems = problems_of(render_edited(tmp_path, typo), crds)
    expected = (
        "InferenceService/fraud-detector (manifests/base/inference-service.yaml): "
        "spec.predictor.containers[0]: unknown field(s) ['imagePullPolicyy']"
    )
    assert problems == [f"{overlay}: {expected}" for overlay in OVERLAYS]


def test_a_pod_without_seccomp_profile_is_refused(
    tmp_path: Path, crds: check.CustomResourceSchemas
) -> None:
    def drop_seccomp(tree: Path) -> None:
        def change(documents: list[dict[str, Any]]) -> None:
            pod = documents[0]["spec"]["template"]["spec"]
            del pod["securityContext"]["seccompProfile"]
            del pod["containers"][0]["securityContext"]["seccompProfile"]

        edit_yaml(tree / "base/mlflow.yaml", change)

    problems = problems_of(render_edited(tmp_path, drop_seccomp), crds)
    assert problems == [
        f"{overlay}: Deployment/mlflow (manifests/base/mlflow.yaml): "
        "spec.template.spec.containers[0].securityContext.seccompProfile: type RuntimeDefault "
        "(or Localhost) is required here or in the pod's securityContext (restricted), got None"
        for overlay in OVERLAYS
    ]


def test_an_unknown_field_of_a_builtin_kind_is_refused(
    tmp_path: Path, crds: check.CustomResourceSchemas
) -> None:
    def typo(tree: Path) -> None:
        def change(documents: list[dict[str, Any]]) -> None:
            documents[0]["spec"]["replica"] = 2

        edit_yaml(tree / "components/redis/redis.yaml", change)

    problems = problems_of(render_edited(tmp_path, typo), crds)
    assert problems == [
        "overlays/dev: StatefulSet/redis (manifests/components/redis/redis.yaml): spec: "
        "unknown field(s) ['replica']"
    ]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        (
            lambda predictor: predictor.update(canaryTrafficPercent=10),
            "spec.predictor.canaryTrafficPercent",
            "not used here: the canary runs inside Kaizen's server",
        ),
        (
            lambda predictor: predictor.update(model={"modelFormat": {"name": "tensorflow"}}),
            "spec.predictor",
            "exactly one implementation must be set (a model format, a framework or "
            "containers), got ['model', 'containers']",
        ),
        (
            lambda predictor: predictor.update(minReplicas=4, maxReplicas=2),
            "spec.predictor.minReplicas",
            "4 is greater than maxReplicas 2",
        ),
        (
            lambda predictor: predictor.update(scaleMetric="concurrency"),
            "spec.predictor.scaleMetric",
            "HPA scales on cpu or memory, got 'concurrency'",
        ),
    ],
)
def test_what_kserves_webhook_refuses_is_refused(
    tmp_path: Path,
    crds: check.CustomResourceSchemas,
    change: Callable[[dict[str, Any]], None],
    field: str,
    message: str,
) -> None:
    def edit(tree: Path) -> None:
        edit_yaml(
            tree / "base/inference-service.yaml",
            lambda documents: change(documents[0]["spec"]["predictor"]),
        )
        # prod's own replica counts would mask the base's in the prod overlay
        (tree / "overlays/prod/inference-service.yaml").write_text(
            "apiVersion: serving.kserve.io/v1beta1\nkind: InferenceService\n"
            "metadata:\n  name: fraud-detector\nspec:\n  predictor: {}\n"
        )

    problems = problems_of(render_edited(tmp_path, edit), crds)
    prefix = "InferenceService/fraud-detector (manifests/base/inference-service.yaml)"
    assert problems
    for problem in problems:
        assert f": {prefix}: {field}: {message}" in problem


def test_an_image_by_tag_and_cluster_wide_rbac_are_refused(
    tmp_path: Path, crds: check.CustomResourceSchemas
) -> None:
    def edit(tree: Path) -> None:
        path = tree / "overlays/dev/kustomization.yaml"
        body = yaml.safe_load(path.read_text())
        body["images"] = [i for i in body["images"] if i["name"] != "redis"] + [
            {"name": "redis", "newName": "docker.io/library/redis", "newTag": "7.4.2-alpine"}
        ]
        path.write_text(yaml.safe_dump(body, sort_keys=False))

        def change(documents: list[dict[str, Any]]) -> None:
            documents[2]["kind"] = "ClusterRole"

        edit_yaml(tree / "base/rbac.yaml", change)

    problems = problems_of(render_edited(tmp_path, edit), crds)
    assert (
        "overlays/dev: StatefulSet/redis (manifests/components/redis/redis.yaml): "
        "spec.template.spec.containers[0].image: must be pinned by digest "
        "(<name>@sha256:<64 hex>), got 'docker.io/library/redis:7.4.2-alpine'"
    ) in problems
    assert (
        "overlays/dev: ClusterRole/kaizen-pipeline-runner (manifests/base/rbac.yaml): kind: "
        "cluster-wide RBAC is not allowed: use a Role"
    ) in problems


def test_a_katib_trial_without_seccomp_is_refused(
    tmp_path: Path, crds: check.CustomResourceSchemas
) -> None:
    path = tmp_path / "fraud-mlp-tpe.yaml"
    body = yaml.safe_load((REPOSITORY / "katib/fraud-mlp-tpe.yaml").read_text())
    pod = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"]
    del pod["securityContext"]
    del pod["containers"][0]["securityContext"]["seccompProfile"]
    pod["containers"][0]["imagePullPolicyy"] = "Always"
    path.write_text(yaml.safe_dump(body, sort_keys=False))
    problems = [
        str(p)
        for p in check.check_documents(
            check.load_file_documents(path, tmp_path), crds, pinned_images=False
        )
    ]
    container = "spec.trialTemplate.trialSpec.spec.template.spec.containers[0]"
    assert problems == [
        f"fraud-mlp-tpe.yaml: Experiment/fraud-mlp-tpe (fraud-mlp-tpe.yaml): "
        f"{container}.securityContext.seccompProfile: type RuntimeDefault (or Localhost) is "
        "required here or in the pod's securityContext (restricted), got None",
        f"fraud-mlp-tpe.yaml: Experiment/fraud-mlp-tpe (fraud-mlp-tpe.yaml): "
        f"{container}.imagePullPolicyy: unknown field (not in core/v1 Container); did you mean "
        "'imagePullPolicy'?",
    ]


def test_the_unedited_prod_credentials_example_cannot_be_applied(
    tmp_path: Path, crds: check.CustomResourceSchemas
) -> None:
    def copy_example_unedited(tree: Path) -> None:
        for overlay in OVERLAYS:
            shutil.copy(
                tree / overlay / "credentials.env.example", tree / overlay / "credentials.env"
            )

    rendered = render_edited(tmp_path, copy_example_unedited, examples=False)
    problems = [str(p) for p in check.check_documents(rendered["overlays/prod"], crds)]
    assert problems == [
        "overlays/prod: Secret/kaizen-credentials (manifests/overlays/prod/kustomization.yaml): "
        "data['REPLACE EVERY VALUE BELOW, THEN DELETE THIS LINE']: not a valid key "
        "(alphanumerics, '-', '_' or '.'; the API server refuses it): is this the example "
        "file's guard line?"
    ]
    assert check.check_documents(rendered["overlays/dev"], crds) == []
