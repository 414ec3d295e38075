"""Contract tests of the deploy step's cluster half against the Kubernetes API. Not a cluster.

No Kubernetes or KServe runs here. The step and :mod:`kaizen.platform.inference_service` talk
through a real ``kubernetes`` client to ``fake_kserve_api.FakeKServeApi``, a real HTTP(S)
server on 127.0.0.1 that answers as the API server does (merge-patch semantics, CRD schema
validation, resourceVersion preconditions, generation bumps, 401/403/404/409/415/422 Status
objects) and whose controller thread rolls the predictor Deployment and writes the
InferenceService status the way KServe 0.20 in Standard mode does. The registry is a real
MLflow store under the test's KAIZEN_HOME.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes.client
import pytest
from kubernetes.client.exceptions import ApiException

from kaizen.platform.inference_service import (
    PERMISSIONS,
    VERSION_ANNOTATION,
    InferenceServiceAccessError,
    InferenceServiceConflictError,
    InferenceServiceNotFoundError,
    InferenceServiceRejectedError,
    InferenceServiceRollout,
    RolloutFailedError,
    RolloutTimeoutError,
    cluster_api_client,
)
from kaizen.platform.settings import Settings
from kaizen.steps.deploy_model import deploy_step
from tests.contract.fake_kserve_api import DEPLOY_PERMISSIONS, FakeKServeApi
from tests.support.registry import AliasRegistry, empty_store

NAMESPACE = "kaizen"
NAME = "fraud-detector"
RUNNER = "system:serviceaccount:kaizen:kaizen-pipeline-runner"
RUNNER_TOKEN = "runner-token-5f1c9e"
READER_TOKEN = "reader-token-77aa01"
REPLICAS = 2
# As the manifests apply it: Standard mode, our serving image, no model annotation yet.
INFERENCE_SERVICE: dict[str, Any] = {
    "apiVersion": "serving.kserve.io/v1beta1",
    "kind": "InferenceService",
    "metadata": {
        "name": NAME,
        "namespace": NAMESPACE,
        "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
    },
    "spec": {
        "predictor": {
            "minReplicas": 1,
            "maxReplicas": 3,
            "containers": [
                {
                    "name": "kserve-container",
                    "image": "registry.example/kaizen-serving@sha256:" + "ab" * 32,
                    "ports": [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}],
                }
            ],
        }
    },
}


@pytest.fixture
def api() -> Iterator[FakeKServeApi]:
    tokens = {
        RUNNER_TOKEN: (RUNNER, DEPLOY_PERMISSIONS),
        READER_TOKEN: ("system:serviceaccount:kaizen:reader", {"get inferenceservices"}),
    }
    with FakeKServeApi(tokens=tokens) as server:
        # The Deployment has its own generation history (HPA, KServe's own updates).
        server.add_inference_service(INFERENCE_SERVICE, replicas=REPLICAS, deployment_generation=7)
        yield server


@pytest.fixture
def kubeconfig(api: FakeKServeApi, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The pipeline runner's kubeconfig, found through $KUBECONFIG as outside a pod."""
    path = api.kubeconfig(tmp_path / "kubeconfig", token=RUNNER_TOKEN)
    monkeypatch.setenv("KUBECONFIG", str(path))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    return path


@pytest.fixture
def cluster_settings(kaizen_home: Path) -> Settings:
    return Settings(home=kaizen_home, deploy_target="kserve", deploy_namespace=NAMESPACE)


@pytest.fixture(scope="session")
def mlflow_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return empty_store(tmp_path_factory.mktemp("mlflow-template"))


@pytest.fixture
def registry(cluster_settings: Settings, mlflow_template: Path) -> AliasRegistry:
    return AliasRegistry.create(cluster_settings, mlflow_template)


def registered(tmp_path: Path, version: int, aliases: list[str]) -> Path:
    """The register step's record, as the deploy step receives it."""
    path = tmp_path / f"registered-{version}.json"
    path.write_text(json.dumps({"name": NAME, "version": version, "aliases": aliases}))
    return path


def rolled_out_to(api: FakeKServeApi, version: int) -> bool:
    """Every replica of the predictor Deployment runs pods annotated with ``version``."""
    deployment = api.deployment(NAMESPACE, f"{NAME}-predictor")
    template = deployment["spec"]["template"]["metadata"]["annotations"]
    status = deployment["status"]
    return (
        template.get(VERSION_ANNOTATION) == str(version)
        and status["observedGeneration"] == deployment["metadata"]["generation"]
        and status["updatedReplicas"]
        == status["replicas"]
        == status["availableReplicas"]
        == REPLICAS
    )


def rollout(
    api: FakeKServeApi, token: str = RUNNER_TOKEN, **options: Any
) -> InferenceServiceRollout:
    configuration = kubernetes.client.Configuration()
    configuration.host = api.url
    configuration.api_key = {"authorization": f"Bearer {token}"}
    return InferenceServiceRollout(
        kubernetes.client.ApiClient(configuration), NAMESPACE, NAME, backoff_s=0.01, **options
    )


# -- the step, end to end ---------------------------------------------------------------------


def test_first_deploy_rolls_the_predictor_pods_to_the_champion(
    api: FakeKServeApi,
    kubeconfig: Path,
    cluster_settings: Settings,
    registry: AliasRegistry,
    tmp_path: Path,
) -> None:
    version = registry.add("champion", "challenger")
    record = deploy_step(
        registered(tmp_path, version, ["champion", "challenger"]),
        settings=cluster_settings,
        timeout_s=120,
        poll_s=0.05,
    )
    assert record["status"] == "rolled-out"
    assert (record["alias"], record["version"], record["changed"]) == ("champion", 1, True)
    assert record["inference_service"]["name"] == NAME
    assert rolled_out_to(api, 1)
    isvc = api.inference_service(NAMESPACE, NAME)
    assert isvc["metadata"]["generation"] == 2
    assert isvc["spec"]["predictor"]["annotations"] == {VERSION_ANNOTATION: "1"}
    ready = next(c for c in isvc["status"]["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    # KServe copies the Deployment's observedGeneration: never the InferenceService's own.
    assert isvc["status"]["observedGeneration"] != isvc["metadata"]["generation"]
    (patch,) = api.requests_to("PATCH", "inferenceservices")
    assert patch.headers["content-type"] == "application/merge-patch+json"
    assert patch.body["spec"] == {"predictor": {"annotations": {VERSION_ANNOTATION: "1"}}}
    assert patch.body["metadata"]["resourceVersion"]  # decided on a read: a precondition


def test_the_next_version_rolls_again_as_the_challenger(
    api: FakeKServeApi,
    kubeconfig: Path,
    cluster_settings: Settings,
    registry: AliasRegistry,
    tmp_path: Path,
) -> None:
    first = registry.add("champion", "challenger")
    deploy_step(registered(tmp_path, first, []), settings=cluster_settings, poll_s=0.05)
    second = registry.add("challenger")
    record = deploy_step(
        registered(tmp_path, second, ["challenger"]), settings=cluster_settings, poll_s=0.05
    )
    assert (record["alias"], record["version"], record["changed"]) == ("challenger", 2, True)
    assert rolled_out_to(api, 2)
    assert api.inference_service(NAMESPACE, NAME)["metadata"]["generation"] == 3


def test_a_rerun_with_the_same_version_changes_nothing(
    api: FakeKServeApi,
    kubeconfig: Path,
    cluster_settings: Settings,
    registry: AliasRegistry,
    tmp_path: Path,
) -> None:
    version = registry.add("champion", "challenger")
    path = registered(tmp_path, version, ["champion", "challenger"])
    deploy_step(path, settings=cluster_settings, poll_s=0.05)
    before = api.inference_service(NAMESPACE, NAME)
    deployment_before = api.deployment(NAMESPACE, f"{NAME}-predictor")
    again = deploy_step(path, settings=cluster_settings, poll_s=0.05)
    assert again["status"] == "rolled-out" and again["changed"] is False
    assert len(api.requests_to("PATCH", "inferenceservices")) == 1
    after = api.inference_service(NAMESPACE, NAME)
    assert after["metadata"]["resourceVersion"] == before["metadata"]["resourceVersion"]
    assert api.deployment(NAMESPACE, f"{NAME}-predictor") == deployment_before


def test_a_version_the_registry_no_longer_offers_is_not_deployed(
    api: FakeKServeApi,
    kubeconfig: Path,
    cluster_settings: Settings,
    registry: AliasRegistry,
    tmp_path: Path,
) -> None:
    registry.add("champion")
    rejected = registry.add("challenger")
    registry.drop("challenger")  # the canary rolled it back before the deploy step ran
    record = deploy_step(registered(tmp_path, rejected, ["challenger"]), settings=cluster_settings)
    assert record["status"] == "superseded" and record["alias"] is None
    assert "champion=1" in record["note"]
    assert api.requests_to("PATCH", "inferenceservices") == []


def test_a_missing_inference_service_is_named_with_the_settings_that_choose_it(
    api: FakeKServeApi, kubeconfig: Path, registry: AliasRegistry, kaizen_home: Path, tmp_path: Path
) -> None:
    settings = Settings(
        home=kaizen_home,
        deploy_target="kserve",
        deploy_namespace=NAMESPACE,
        deploy_inference_service="fraud-detectr",
    )
    version = registry.add("champion", "challenger")
    with pytest.raises(InferenceServiceNotFoundError) as raised:
        deploy_step(registered(tmp_path, version, []), settings=settings)
    message = str(raised.value)
    assert "InferenceService kaizen/fraud-detectr not found" in message
    assert "KAIZEN_DEPLOY_INFERENCE_SERVICE" in message and "404 NotFound" in message


def test_the_pods_service_account_is_used_over_tls_inside_a_pod(
    registry: AliasRegistry,
    cluster_settings: Settings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with FakeKServeApi(tokens={RUNNER_TOKEN: (RUNNER, DEPLOY_PERMISSIONS)}, tls=True) as api:
        api.add_inference_service(INFERENCE_SERVICE, replicas=REPLICAS)
        assert api.ca_file is not None
        mounted = tmp_path / "serviceaccount"
        mounted.mkdir()
        (mounted / "token").write_text(RUNNER_TOKEN)
        shutil.copy(api.ca_file, mounted / "ca.crt")
        monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
        monkeypatch.setenv("KUBERNETES_SERVICE_PORT", str(api.port))
        monkeypatch.delenv("KUBECONFIG", raising=False)
        client = cluster_api_client(service_account_dir=mounted)
        assert client.configuration.host == f"https://127.0.0.1:{api.port}"
        with InferenceServiceRollout(client, NAMESPACE, NAME) as isvc:
            outcome = isvc.deploy(4, timeout_s=120, poll_s=0.05)
        assert outcome.changed and rolled_out_to(api, 4)
        sent = {r.headers["authorization"] for r in api.requests}
        assert sent == {f"bearer {RUNNER_TOKEN}"}


def test_a_pod_without_a_mounted_token_gets_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.platform.inference_service import ClusterConfigError

    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "6443")
    with pytest.raises(ClusterConfigError, match="automountServiceAccountToken"):
        cluster_api_client(service_account_dir=tmp_path / "nothing-mounted")


# -- waiting for the rollout ------------------------------------------------------------------


def test_a_stalled_rollout_times_out_naming_what_was_seen_though_ready_stays_true(
    api: FakeKServeApi,
) -> None:
    api.break_rollout(NAMESPACE, NAME, reason="ModelLoadFailed", message="champion failed to load")
    with rollout(api) as isvc, pytest.raises(RolloutTimeoutError) as raised:
        isvc.deploy(5, timeout_s=1.0, poll_s=0.05)
    message = str(raised.value)
    assert "did not roll out model version 5 within 1s" in message
    assert f"1 of {REPLICAS} replicas of {NAME}-predictor updated" in message
    assert "ReplicaSetUpdated" in message  # the Deployment's Progressing condition
    assert "KServe's last model failure: ModelLoadFailed: champion failed to load" in message
    assert "kubectl -n kaizen describe inferenceservice fraud-detector" in message
    # What a wait on Ready alone would have believed: the old pods keep it True.
    status = api.inference_service(NAMESPACE, NAME)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True"
    assert status["modelStatus"]["lastFailureInfo"]["reason"] == "ModelLoadFailed"


def test_a_rollout_past_its_progress_deadline_fails_with_the_conditions_reason(
    api: FakeKServeApi,
) -> None:
    api.break_rollout(NAMESPACE, NAME, deadline_ticks=5)
    with rollout(api) as isvc, pytest.raises(RolloutFailedError) as raised:
        isvc.deploy(6, timeout_s=300, poll_s=0.05)
    message = str(raised.value)
    assert "failed to roll out model version 6" in message
    assert "ProgressDeadlineExceeded" in message and "has timed out progressing" in message
    status = api.inference_service(NAMESPACE, NAME)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_serverless_inference_services_are_refused_before_anything_is_written(
    api: FakeKServeApi,
) -> None:
    serverless = json.loads(json.dumps(INFERENCE_SERVICE))
    serverless["metadata"]["name"] = "knative-one"
    serverless["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] = "Serverless"
    api.add_inference_service(serverless)
    configuration = kubernetes.client.Configuration()
    configuration.host = api.url
    configuration.api_key = {"authorization": f"Bearer {RUNNER_TOKEN}"}
    client = kubernetes.client.ApiClient(configuration)
    with (
        InferenceServiceRollout(client, NAMESPACE, "knative-one") as isvc,
        pytest.raises(InferenceServiceRejectedError, match="Serverless mode"),
    ):
        isvc.deploy(1, timeout_s=10)
    assert api.requests_to("PATCH", "inferenceservices") == []


# -- conflicts, credentials, permissions, blips -----------------------------------------------


def test_a_concurrent_write_is_met_with_409_and_the_patch_is_decided_again(
    api: FakeKServeApi,
) -> None:
    api.write_concurrently(NAMESPACE, NAME, times=2)
    with rollout(api) as isvc:
        outcome = isvc.deploy(7, timeout_s=120, poll_s=0.05)
    assert outcome.changed and rolled_out_to(api, 7)
    patches = api.requests_to("PATCH", "inferenceservices")
    assert len(patches) == 3  # two met a newer resourceVersion
    assert len({p.body["metadata"]["resourceVersion"] for p in patches}) == 3
    labels = api.inference_service(NAMESPACE, NAME)["metadata"]["labels"]
    assert labels["touched-by"].startswith("someone-else")  # the other writer's change kept


def test_conflicts_that_never_stop_give_up_with_a_clear_error(api: FakeKServeApi) -> None:
    api.write_concurrently(NAMESPACE, NAME, times=100)
    with rollout(api, attempts=3) as isvc, pytest.raises(InferenceServiceConflictError) as raised:
        isvc.deploy(8, timeout_s=10)
    assert "3 patches met 409 Conflict" in str(raised.value)
    assert predictor_annotations(api) == {}


def predictor_annotations(api: FakeKServeApi) -> dict[str, str]:
    return dict(
        api.inference_service(NAMESPACE, NAME)["spec"]["predictor"].get("annotations") or {}
    )


def test_a_wrong_token_gets_401_and_the_error_never_shows_it(api: FakeKServeApi) -> None:
    with (
        rollout(api, token="not-the-runners-token") as isvc,
        pytest.raises(InferenceServiceAccessError) as raised,
    ):
        isvc.deploy(9, timeout_s=10)
    message = str(raised.value)
    assert "rejected the credentials" in message and "401 Unauthorized" in message
    assert "not-the-runners-token" not in message


def test_without_patch_permission_403_names_the_permissions_the_role_needs(
    api: FakeKServeApi,
) -> None:
    with (
        rollout(api, token=READER_TOKEN) as isvc,
        pytest.raises(InferenceServiceAccessError) as raised,
    ):
        isvc.deploy(10, timeout_s=10)
    message = str(raised.value)
    assert 'cannot patch resource "inferenceservices"' in message
    assert PERMISSIONS in message and "namespace 'kaizen'" in message
    assert predictor_annotations(api) == {}


def test_an_api_server_blip_is_retried(api: FakeKServeApi) -> None:
    api.fail("GET", "inferenceservices", 503, "ServiceUnavailable", "etcd leader changed", times=2)
    api.fail("GET", "deployments", 429, "TooManyRequests", "slow down", times=1)
    with rollout(api) as isvc:
        outcome = isvc.deploy(11, timeout_s=120, poll_s=0.05)
    assert outcome.changed and rolled_out_to(api, 11)


# -- the stand-in refuses what the API server refuses -----------------------------------------


def _raw_patch(api: FakeKServeApi, body: Any, content_type: str) -> ApiException:
    configuration = kubernetes.client.Configuration()
    configuration.host = api.url
    configuration.api_key = {"authorization": f"Bearer {RUNNER_TOKEN}"}
    client = kubernetes.client.ApiClient(configuration)
    path = f"/apis/serving.kserve.io/v1beta1/namespaces/{NAMESPACE}/inferenceservices/{NAME}"
    with pytest.raises(ApiException) as raised:
        client.call_api(
            path,
            "PATCH",
            header_params={"Content-Type": content_type, "Accept": "application/json"},
            body=body,
            response_type="object",
            auth_settings=["BearerToken"],
        )
    client.close()
    return raised.value


def test_stand_in_refuses_a_strategic_merge_patch_on_a_custom_resource(
    api: FakeKServeApi,
) -> None:
    error = _raw_patch(api, {"spec": {}}, "application/strategic-merge-patch+json")
    assert error.status == 415


def test_stand_in_validates_the_patched_object_against_kserves_crd(api: FakeKServeApi) -> None:
    error = _raw_patch(
        api,
        {"spec": {"predictor": {"minReplicas": "two"}}},
        "application/merge-patch+json",
    )
    assert error.status == 422
    assert "spec.predictor.minReplicas" in json.loads(error.body)["message"]
    number = _raw_patch(
        api,
        {"spec": {"predictor": {"annotations": {VERSION_ANNOTATION: 3}}}},
        "application/merge-patch+json",
    )
    assert number.status == 422  # annotation values are strings
    assert predictor_annotations(api) == {}
