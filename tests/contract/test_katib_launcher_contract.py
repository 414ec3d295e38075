"""Contract tests of the Katib launcher against the Kubernetes API shape. Not a cluster.

No Kubernetes cluster or Katib controller runs here. These tests point a real
``kubernetes.client.ApiClient`` at ``fake_kube_api.FakeKubeApi``, a real HTTP server on
127.0.0.1 that answers the ``kubeflow.org/v1beta1`` paths the launcher uses as an API server
with Katib installed does: Kubernetes-shaped JSON (objects, lists, ``Status`` errors),
finalizers and foreground deletion, 409s while an object terminates, resourceVersion
conflicts, and Katib's defaulting and validating webhooks (ported from Katib v0.19.0). It
records every request. The tests pin the contract on both sides of the wire: what the
launcher sends (request bodies, paths, query parameters, headers) and how it copes with what a
Katib cluster answers. Katib's progress is scripted as a sequence of status values; its
controllers' finalizer handling and the garbage collector run as simulated controllers, on a
background thread or step by step under the test's control. The last section checks the
stand-in itself against the API server's documented behaviour.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import logging
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes.client
import pytest
import yaml
from kubernetes.client.exceptions import ApiException

from kaizen.tuning.katib import (
    EXPERIMENT_LABEL,
    SPEC_DIGEST_ANNOTATION,
    KatibAccessError,
    KatibConfigError,
    KatibConflictError,
    KatibLauncher,
    KatibNotFoundError,
    KatibRejectedError,
    KatibTerminatingError,
    KatibTimeoutError,
    KatibUnreachableError,
)
from kaizen.tuning.spec import (
    ExperimentSpecError,
    apply_overrides,
    load_experiment,
    validate_experiment,
)


def _load_fake_api() -> ModuleType:
    # Test folders have no __init__.py (importlib import mode), so load the helper by path.
    path = Path(__file__).with_name("fake_kube_api.py")
    spec = importlib.util.spec_from_file_location("fake_kube_api", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fake_kube_api"] = module
    spec.loader.exec_module(module)
    return module


fake_kube_api = _load_fake_api()
FakeKubeApi = fake_kube_api.FakeKubeApi
katib_experiment_status = fake_kube_api.katib_experiment_status
katib_metric = fake_kube_api.katib_metric
katib_trial = fake_kube_api.katib_trial

NAMESPACE = "team-tuning"
EXPERIMENTS_PATH = f"/apis/kubeflow.org/v1beta1/namespaces/{NAMESPACE}/experiments"
FAST = {"attempts": 3, "backoff_s": 0.02, "request_timeout_s": 5.0}
POLL_S = 0.02

BEST_TRIAL = {
    "bestTrialName": "fraud-mlp-tpe-r1-b7xq2m4k",
    "parameterAssignments": [
        {"name": "learning_rate", "value": "0.0031"},
        {"name": "num_layers", "value": "2"},
        {"name": "units", "value": "64"},
        {"name": "dropout", "value": "0.12"},
        {"name": "batch_size", "value": "256"},
    ],
    "observation": {
        "metrics": [
            {"name": "val_roc_auc", "latest": "0.9912", "max": "0.9912", "min": "0.9412"},
            {"name": "val_accuracy", "latest": "0.981", "max": "0.981", "min": "0.95"},
            {"name": "val_pr_auc", "latest": "0.83", "max": "0.83", "min": "0.61"},
            {"name": "val_loss", "latest": "0.061", "max": "0.2", "min": "0.061"},
        ]
    },
}


@pytest.fixture
def experiment_body(repo_root: Path) -> dict[str, Any]:
    return load_experiment(repo_root / "katib" / "fraud-mlp-tpe.yaml")


@pytest.fixture
def fake_api() -> Iterator[Any]:
    with FakeKubeApi() as server:
        yield server


@pytest.fixture
def launcher(fake_api: Any) -> Iterator[KatibLauncher]:
    with KatibLauncher(fake_api.api_client(), NAMESPACE, **FAST) as katib:
        yield katib


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _trial_args(body: dict[str, Any]) -> list[str]:
    container = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    return [*container.get("command", []), *container.get("args", [])]


def _finished(
    name: str, reason: str, optimal: dict[str, Any] | None = BEST_TRIAL
) -> list[dict[str, Any]]:
    """Katib's status progression Created -> Running -> Succeeded for experiment ``name``."""
    best = (optimal or {}).get("bestTrialName")
    return [
        katib_experiment_status("Created", reason="ExperimentCreated", message="created"),
        katib_experiment_status(
            "Running",
            reason="ExperimentRunning",
            message="Experiment is running",
            running=[f"{name}-a", f"{name}-b"],
        ),
        katib_experiment_status(
            "Succeeded",
            reason=reason,
            message="Experiment has succeeded",
            succeeded=[best] if best else [],
            optimal=optimal,
        ),
    ]


# -- what the launcher sends ------------------------------------------------------------------


def test_contract_create_posts_the_validated_experiment_with_overrides(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    original = yaml.safe_dump(experiment_body)
    overrides: dict[str, Any] = {
        "name_suffix": "run-42",
        "image": "registry.example/kaizen-component@sha256:" + "ab" * 32,
        "train_data": "/mnt/data/run-42/train.parquet",
        "validation_data": "/mnt/data/run-42/validation.parquet",
        "features_file": "/mnt/data/run-42/features.json",
        "max_trial_count": 4,
        "parallel_trial_count": 2,
    }

    name = launcher.launch(experiment_body, **overrides)

    [post] = fake_api.requests_to("POST")
    assert post.path == EXPERIMENTS_PATH
    assert post.headers["content-type"] == "application/json"
    sent = post.body
    assert sent["apiVersion"] == "kubeflow.org/v1beta1"
    assert sent["kind"] == "Experiment"
    assert sent["metadata"]["name"] == name == "fraud-mlp-tpe-run-42"
    assert sent["metadata"]["namespace"] == NAMESPACE
    assert sent["spec"]["maxTrialCount"] == 4
    assert sent["spec"]["parallelTrialCount"] == 2
    container = sent["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert container["image"] == overrides["image"]
    args = _trial_args(sent)
    assert "--train-data=/mnt/data/run-42/train.parquet" in args
    assert "--validation-data=/mnt/data/run-42/validation.parquet" in args
    assert "--features-file=/mnt/data/run-42/features.json" in args
    assert not any(arg.startswith("--train-data=/mnt/data/train") for arg in args)
    # Katib substitutes the trial parameters on the cluster; the launcher must not.
    assert "--learning-rate=${trialParameters.learningRate}" in args
    # Exactly spec.apply_overrides' body, plus our adoption digest and nothing else.
    expected = apply_overrides(experiment_body, namespace=NAMESPACE, **overrides)
    annotations = sent["metadata"].pop("annotations")
    assert set(annotations) == {SPEC_DIGEST_ANNOTATION}
    assert len(annotations[SPEC_DIGEST_ANNOTATION]) == 64
    expected["metadata"].pop("annotations", None)
    assert sent == expected
    assert yaml.safe_dump(experiment_body) == original, "the caller's body was modified"


def test_contract_invalid_override_is_refused_before_any_request(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    with pytest.raises(ExperimentSpecError, match=r"parallelTrialCount"):
        launcher.launch(experiment_body, max_trial_count=2, parallel_trial_count=3)
    assert fake_api.requests == []


# -- how it reads Katib's answers -------------------------------------------------------------


def test_contract_succeeded_status_gives_optimal_trial_best_params_and_trials(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    name = "fraud-mlp-tpe-r1"
    fake_api.script_status(name, _finished(name, "ExperimentGoalReached"))
    fake_api.add_trial(
        NAMESPACE,
        katib_trial(
            name,
            f"{name}-zz000001",
            {"learning_rate": "0.0007", "num_layers": "1"},
            [katib_metric("val_roc_auc", "0.90"), katib_metric("val_loss", "0.31")],
            state="EarlyStopped",
            reason="TrialEarlyStopped",
            created="2025-01-01T00:00:01Z",
            started="2025-01-01T00:00:02Z",
            completed="2025-01-01T00:01:02Z",
        ),
    )
    fake_api.add_trial(
        NAMESPACE,
        katib_trial(
            name,
            "fraud-mlp-tpe-r1-b7xq2m4k",
            {p["name"]: p["value"] for p in BEST_TRIAL["parameterAssignments"]},
            [katib_metric("val_roc_auc", "0.9912", "0.9912", "0.9412")],
            state="Succeeded",
            reason="TrialSucceeded",
            created="2025-01-01T00:00:05Z",
            started="2025-01-01T00:00:06Z",
            completed="2025-01-01T00:02:36Z",
        ),
    )
    fake_api.add_trial(
        NAMESPACE,
        katib_trial(
            name,
            f"{name}-aa000002",
            {"learning_rate": "0.009"},
            [katib_metric("val_roc_auc", "unavailable")],
            state="Failed",
            reason="TrialFailed",
            created="2025-01-01T00:00:09Z",
            started="2025-01-01T00:00:10Z",
            completed="2025-01-01T00:00:20Z",
        ),
    )
    # A Trial of another Experiment in the same namespace must not leak in.
    fake_api.add_trial(
        NAMESPACE,
        katib_trial(
            "someone-else",
            "someone-else-q1",
            {},
            [],
            state="Succeeded",
            reason="TrialSucceeded",
            created="2025-01-01T00:00:00Z",
            started="2025-01-01T00:00:00Z",
            completed="2025-01-01T00:00:01Z",
        ),
    )

    name = launcher.launch(experiment_body, name_suffix="r1")
    result = launcher.wait(name, timeout_s=10, poll_s=POLL_S)

    assert result.name == name
    assert result.status == "Succeeded"
    assert result.reason.startswith("ExperimentGoalReached")
    assert result.goal_reached is True
    assert result.optimal_trial == BEST_TRIAL
    assert result.best_parameters() == {
        "learning_rate": "0.0031",
        "num_layers": "2",
        "units": "64",
        "dropout": "0.12",
        "batch_size": "256",
    }
    assert [(t.name, t.status) for t in result.trials] == [
        (f"{name}-zz000001", "EarlyStopped"),
        ("fraud-mlp-tpe-r1-b7xq2m4k", "Succeeded"),
        (f"{name}-aa000002", "Failed"),
    ]
    best = result.best_trial()
    assert best is not None
    assert best.metrics == {"val_roc_auc": 0.9912}
    assert best.duration_s == 150.0
    assert result.trials[2].metrics == {}, "Katib's 'unavailable' is not a number"
    # Three polls (Created, Running, Succeeded) on the status subresource, then one Trial list.
    status_gets = fake_api.requests_to("GET", "experiment/status")
    assert [r.path for r in status_gets] == [f"{EXPERIMENTS_PATH}/{name}/status"] * 3
    [trial_list] = fake_api.requests_to("GET", "trials")
    assert trial_list.path == f"/apis/kubeflow.org/v1beta1/namespaces/{NAMESPACE}/trials"
    assert trial_list.query["labelSelector"] == [f"{EXPERIMENT_LABEL}={name}"]


def test_contract_trial_list_follows_continue_pages(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    name = "fraud-mlp-tpe-big"
    fake_api.script_status(name, _finished(name, "ExperimentMaxTrialsReached"))
    for index in range(260):  # more than one page of the launcher's limit (250)
        fake_api.add_trial(
            NAMESPACE,
            katib_trial(
                name,
                f"{name}-{index:08d}",
                {"units": str(16 + index % 8 * 16)},
                [katib_metric("val_roc_auc", f"0.{index:04d}")],
                state="Succeeded",
                reason="TrialSucceeded",
                created=f"2025-01-01T{index // 60:02d}:{index % 60:02d}:00Z",
                started="2025-01-01T00:00:00Z",
                completed="2025-01-01T05:00:00Z",
            ),
        )

    result = launcher.wait(launcher.launch(experiment_body, name_suffix="big"), 10, POLL_S)

    assert len(result.trials) == 260
    assert len({t.name for t in result.trials}) == 260
    assert [r.query.get("continue") for r in fake_api.requests_to("GET", "trials")] == [
        None,
        ["250"],
    ]


@pytest.mark.parametrize(
    ("reason", "best_latest", "goal_reached"),
    [
        ("ExperimentMaxTrialsReached", "0.995", True),  # the best value meets goal 0.99
        ("ExperimentMaxTrialsReached", "0.97", False),
        ("ExperimentSuggestionEndReached", "0.9899", False),
    ],
)
def test_contract_goal_reached_from_condition_reason_or_best_value(
    fake_api: Any,
    launcher: KatibLauncher,
    experiment_body: dict[str, Any],
    reason: str,
    best_latest: str,
    goal_reached: bool,
) -> None:
    assert experiment_body["spec"]["objective"]["goal"] == 0.99
    optimal = {
        "bestTrialName": "fraud-mlp-tpe-g-1",
        "parameterAssignments": [{"name": "units", "value": "32"}],
        "observation": {"metrics": [katib_metric("val_roc_auc", best_latest, "0.999", "0.5")]},
    }
    name = "fraud-mlp-tpe-g"
    fake_api.script_status(name, _finished(name, reason, optimal))

    result = launcher.wait(launcher.launch(experiment_body, name_suffix="g"), 10, POLL_S)

    assert result.status == "Succeeded"
    assert result.reason.startswith(reason)
    # The YAML's metricStrategies say "latest", so max 0.999 must not count as reaching 0.99.
    assert result.goal_reached is goal_reached


def test_contract_failed_status_surfaces_katib_reason_and_message(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    name = "fraud-mlp-tpe-bad"
    fake_api.script_status(
        name,
        [
            katib_experiment_status("Running", reason="ExperimentRunning", message="running"),
            katib_experiment_status(
                "Failed",
                reason="ExperimentFailed",
                message="Experiment has failed because max failed count has reached",
                failed=[f"{name}-1", f"{name}-2", f"{name}-3", f"{name}-4"],
            ),
        ],
    )

    result = launcher.wait(launcher.launch(experiment_body, name_suffix="bad"), 10, POLL_S)

    assert result.status == "Failed"
    assert result.reason == (
        "ExperimentFailed: Experiment has failed because max failed count has reached"
    )
    assert result.goal_reached is False
    assert result.optimal_trial is None
    with pytest.raises(LookupError, match="'fraud-mlp-tpe-bad' has no optimal trial"):
        result.best_parameters()


def test_contract_trials_come_from_status_lists_when_trials_may_not_be_listed(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any], caplog: Any
) -> None:
    name = "fraud-mlp-tpe-r2"
    fake_api.script_status(name, _finished(name, "ExperimentGoalReached"))
    fake_api.fail(
        "GET",
        "trials",
        403,
        "Forbidden",
        f'trials.kubeflow.org is forbidden: User "ci" cannot list resource "trials" in API '
        f'group "kubeflow.org" in the namespace "{NAMESPACE}"',
    )

    with caplog.at_level(logging.WARNING, logger="kaizen.tuning.katib"):
        result = launcher.wait(launcher.launch(experiment_body, name_suffix="r2"), 10, POLL_S)

    assert result.best_parameters()["units"] == "64"
    assert [(t.name, t.status) for t in result.trials] == [
        (BEST_TRIAL["bestTrialName"], "Succeeded")
    ]
    assert "trials.kubeflow.org" in caplog.text


def test_contract_snapshot_reports_a_running_experiment_with_its_trials(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    name = "fraud-mlp-tpe-live"
    _never_finishing(fake_api, name)
    fake_api.add_trial(
        NAMESPACE,
        katib_trial(
            name,
            f"{name}-2",
            {"units": "48"},
            [katib_metric("val_roc_auc", "0.93", "0.95", "0.80")],
            state="Running",
            reason="TrialRunning",
            created="2025-01-01T00:00:01Z",
            started="2025-01-01T00:00:02Z",
            completed=None,
        ),
    )

    snapshot = launcher.snapshot(launcher.launch(experiment_body, name_suffix="live"))

    assert snapshot.status == "Running"
    assert snapshot.reason == "ExperimentRunning: Experiment is running"
    assert [(t.name, t.status, t.parameters, t.metrics) for t in snapshot.trials] == [
        (f"{name}-2", "Running", {"units": "48"}, {"val_roc_auc": 0.93})
    ]
    assert snapshot.trials[0].finished_at is None and snapshot.trials[0].duration_s is None


def test_contract_waiting_for_a_missing_experiment_names_it(launcher: KatibLauncher) -> None:
    with pytest.raises(KatibNotFoundError) as caught:
        launcher.wait("fraud-mlp-tpe-gone", timeout_s=5, poll_s=POLL_S)
    message = str(caught.value)
    assert f"Katib Experiment {NAMESPACE}/fraud-mlp-tpe-gone not found" in message
    assert "404 NotFound" in message


# -- timeout and cleanup ----------------------------------------------------------------------


def _never_finishing(fake_api: Any, name: str) -> None:
    fake_api.script_status(
        name,
        [
            katib_experiment_status(
                "Running",
                reason="ExperimentRunning",
                message="Experiment is running",
                succeeded=[f"{name}-1"],
                running=[f"{name}-2", f"{name}-3"],
            )
        ],
    )


def test_contract_wait_timeout_leaves_experiment_running_and_says_how_to_look(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    name = "fraud-mlp-tpe-slow"
    _never_finishing(fake_api, name)
    launcher.launch(experiment_body, name_suffix="slow", max_trial_count=6)

    started = time.monotonic()
    with pytest.raises(KatibTimeoutError) as caught:
        launcher.wait(name, timeout_s=0.3, poll_s=0.05)

    assert time.monotonic() - started >= 0.3  # the experiment got its whole timeout
    assert fake_api.requests_to("GET", "experiment/status")  # it was looked at meanwhile
    message = str(caught.value)
    assert f"{NAMESPACE}/{name}" in message
    assert "did not finish within 0.3s" in message
    assert "1/6 trials done" in message
    assert "left running" in message
    assert f"kubectl -n {NAMESPACE} get experiment {name}" in message
    assert caught.value.deleted is False
    assert fake_api.requests_to("DELETE") == []
    assert fake_api.experiment(NAMESPACE, name) is not None


def test_contract_run_deletes_experiment_after_timeout_unless_keep(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    _never_finishing(fake_api, "fraud-mlp-tpe-t1")
    with pytest.raises(KatibTimeoutError, match="deleted because keep=False") as caught:
        launcher.run(experiment_body, name_suffix="t1", timeout_s=0.2, poll_s=0.05)
    assert caught.value.deleted is True
    fake_api.wait_gone(NAMESPACE, "fraud-mlp-tpe-t1")

    _never_finishing(fake_api, "fraud-mlp-tpe-t2")
    with pytest.raises(KatibTimeoutError, match="left running"):
        launcher.run(experiment_body, name_suffix="t2", timeout_s=0.2, poll_s=0.05, keep=True)
    assert fake_api.experiment(NAMESPACE, "fraud-mlp-tpe-t2") is not None
    assert [r.path for r in fake_api.requests_to("DELETE")] == [
        f"{EXPERIMENTS_PATH}/fraud-mlp-tpe-t1"
    ]


def test_contract_cleanup_deletes_with_foreground_propagation_unless_keep(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    name = launcher.launch(experiment_body, name_suffix="c1")

    launcher.cleanup(name, keep=True)
    assert fake_api.requests_to("DELETE") == []
    assert fake_api.experiment(NAMESPACE, name) is not None

    launcher.cleanup(name, keep=False)
    [delete] = fake_api.requests_to("DELETE")
    assert delete.path == f"{EXPERIMENTS_PATH}/{name}"
    assert delete.query["propagationPolicy"] == ["Foreground"]
    fake_api.wait_gone(NAMESPACE, name)

    launcher.cleanup(name, keep=False)  # already gone: not an error
    assert len(fake_api.requests_to("DELETE")) == 2


def test_contract_run_returns_result_then_deletes_or_keeps(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    for suffix, keep in (("k0", False), ("k1", True)):
        name = f"fraud-mlp-tpe-{suffix}"
        fake_api.script_status(name, _finished(name, "ExperimentGoalReached"))
        result = launcher.run(
            experiment_body, name_suffix=suffix, timeout_s=10, poll_s=POLL_S, keep=keep
        )
        assert result.best_parameters()["learning_rate"] == "0.0031"
        if keep:
            kept = fake_api.experiment(NAMESPACE, name)
            assert kept is not None and "deletionTimestamp" not in kept["metadata"]
        else:
            fake_api.wait_gone(NAMESPACE, name)


def test_contract_run_deletes_experiment_when_waiting_fails(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    fake_api.fail(
        "GET", "experiment/status", 403, "Forbidden", "experiments.kubeflow.org is forbidden"
    )
    with pytest.raises(KatibAccessError):
        launcher.run(experiment_body, name_suffix="w1", timeout_s=10, poll_s=POLL_S)
    fake_api.wait_gone(NAMESPACE, "fraud-mlp-tpe-w1")


# -- 409, 403, 401, unreachable ---------------------------------------------------------------


def test_contract_409_with_a_different_spec_is_refused_and_left_alone(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    foreign = apply_overrides(experiment_body, name_suffix="x", namespace=NAMESPACE)
    foreign["spec"]["maxTrialCount"] = 99
    fake_api.add_experiment(foreign)

    with pytest.raises(KatibConflictError) as caught:
        launcher.run(experiment_body, name_suffix="x", timeout_s=5, poll_s=POLL_S)

    message = str(caught.value)
    assert f"{NAMESPACE}/fraud-mlp-tpe-x already exists with a different spec" in message
    assert "name_suffix" in message
    assert fake_api.requests_to("DELETE") == []
    stored = fake_api.experiment(NAMESPACE, "fraud-mlp-tpe-x")
    assert stored is not None and stored["spec"]["maxTrialCount"] == 99


def test_contract_409_for_our_own_identical_experiment_adopts_it(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any], caplog: Any
) -> None:
    first = launcher.launch(experiment_body, name_suffix="same", image="img:1")
    with caplog.at_level(logging.INFO, logger="kaizen.tuning.katib"):
        second = launcher.launch(experiment_body, name_suffix="same", image="img:1")

    assert first == second
    assert len(fake_api.requests_to("POST")) == 2
    assert "already exists with the same spec" in caplog.text
    # A different override is a different experiment: refused, not adopted.
    with pytest.raises(KatibConflictError):
        launcher.launch(experiment_body, name_suffix="same", image="img:2")


def test_contract_403_names_namespace_and_missing_rbac(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    fake_api.fail(
        "POST",
        "experiments",
        403,
        "Forbidden",
        'experiments.kubeflow.org is forbidden: User "system:serviceaccount:ci:runner" cannot '
        f'create resource "experiments" in API group "kubeflow.org" in the namespace '
        f'"{NAMESPACE}"',
    )

    with pytest.raises(KatibAccessError) as caught:
        launcher.launch(experiment_body, name_suffix="rbac")

    message = str(caught.value)
    assert f"namespace {NAMESPACE!r}" in message
    assert "403 Forbidden" in message
    assert "cannot create resource" in message
    assert "experiments.kubeflow.org" in message
    assert f"kubectl auth can-i create experiments.kubeflow.org -n {NAMESPACE}" in message
    assert len(fake_api.requests_to("POST")) == 1, "a 403 is not retried"


def test_contract_katib_webhook_denial_is_a_rejection_naming_the_fix(
    experiment_body: dict[str, Any],
) -> None:
    # Katib's validating webhook refuses Experiments in a namespace without its label; the
    # local validation cannot know the namespace's labels, so this one reaches the server.
    with FakeKubeApi(
        namespaces={NAMESPACE: {"pod-security.kubernetes.io/enforce": "restricted"}}
    ) as server:
        katib = KatibLauncher(server.api_client(), NAMESPACE, **FAST)
        with pytest.raises(KatibRejectedError) as caught:
            katib.launch(experiment_body, name_suffix="hook")

        message = str(caught.value)
        assert "400 Bad Request" in message
        assert (
            'admission webhook "validator.experiment.katib.kubeflow.org" denied the request: '
            f'Cannot create the Experiment "fraud-mlp-tpe-hook" in namespace "{NAMESPACE}": the '
            'namespace lacks label "katib.kubeflow.org/metrics-collector-injection: enabled"'
        ) in message
        assert (
            f"kubectl label namespace {NAMESPACE} katib.kubeflow.org/metrics-collector-injection"
            "=enabled"
        ) in message
        assert len(server.requests_to("POST")) == 1, "a denial is not retried"
        assert server.experiment(NAMESPACE, "fraud-mlp-tpe-hook") is None


def test_contract_policy_webhook_denial_with_403_is_a_rejection_not_rbac(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    # Policy engines (Gatekeeper, Kyverno) deny with 403, which must not read as missing RBAC.
    fake_api.fail(
        "POST",
        "experiments",
        403,
        "Forbidden",
        'admission webhook "validation.gatekeeper.sh" denied the request: [psp-seccomp] '
        "Seccomp profile 'Unconfined' is not allowed",
    )

    with pytest.raises(KatibRejectedError, match=r"psp-seccomp.*not allowed") as caught:
        launcher.launch(experiment_body, name_suffix="hook")
    assert "RBAC" not in str(caught.value)


def test_contract_unreachable_api_server_fails_after_bounded_retries(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    port = _closed_port()
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://127.0.0.1:{port}"
    katib = KatibLauncher(kubernetes.client.ApiClient(configuration), NAMESPACE, **FAST)

    with pytest.raises(KatibUnreachableError) as caught:
        katib.wait("fraud-mlp-tpe-x", timeout_s=60, poll_s=1)

    # Retries are bounded by the attempts, not by the wait's 60 s: two retries, then the error.
    retries = [r.getMessage() for r in caplog.records if "; retry " in r.getMessage()]
    assert [m.split("; ", 1)[1].split(" (")[0] for m in retries] == [
        "retry 1 of 2 in 0.02s",
        "retry 2 of 2 in 0.04s",
    ], retries
    message = str(caught.value)
    assert f"127.0.0.1:{port}" in message
    assert "after 3 attempts" in message
    assert "Connection refused" in message


def test_contract_api_server_address_with_credentials_is_shown_masked(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    port = _closed_port()
    configuration = kubernetes.client.Configuration()
    configuration.host = f"http://ci-user:kube-pa55word@127.0.0.1:{port}"
    katib = KatibLauncher(kubernetes.client.ApiClient(configuration), NAMESPACE, **FAST)

    with pytest.raises(KatibUnreachableError) as caught:
        katib.wait("fraud-mlp-tpe-x", timeout_s=60, poll_s=1)

    assert f"Kubernetes API at http://***@127.0.0.1:{port} unreachable" in str(caught.value)
    assert "kube-pa55word" not in str(caught.value) + caplog.text


def test_contract_transient_503_is_retried(
    fake_api: Any, launcher: KatibLauncher, experiment_body: dict[str, Any]
) -> None:
    name = "fraud-mlp-tpe-flaky"
    fake_api.script_status(name, _finished(name, "ExperimentGoalReached")[-1:])
    fake_api.fail(
        "GET", "experiment/status", 503, "ServiceUnavailable", "etcdserver: leader changed", times=2
    )

    result = launcher.wait(launcher.launch(experiment_body, name_suffix="flaky"), 10, POLL_S)

    assert result.status == "Succeeded"
    assert len(fake_api.requests_to("GET", "experiment/status")) == 3


# -- credentials --------------------------------------------------------------------------------


def test_contract_bearer_token_is_sent_but_never_logged_or_in_errors(
    experiment_body: dict[str, Any], caplog: Any
) -> None:
    token = "eyJhbGciOiJSUzI1NiJ9.contract-test-secret.c2lnbmF0dXJl"
    with FakeKubeApi(required_token=token) as server:
        name = "fraud-mlp-tpe-tok"
        server.script_status(name, _finished(name, "ExperimentGoalReached"))
        server.fail("GET", "experiment/status", 503, "ServiceUnavailable", "busy", times=1)
        katib = KatibLauncher(server.api_client(token), NAMESPACE, **FAST)
        errors: list[str] = []
        with caplog.at_level(logging.DEBUG):
            katib.launch(experiment_body, name_suffix="tok")
            katib.launch(experiment_body, name_suffix="tok")  # 409, adopted
            katib.run(experiment_body, name_suffix="tok", timeout_s=10, poll_s=POLL_S, keep=True)
            # A wrong token: 401 from the server.
            wrong = KatibLauncher(server.api_client(token[::-1]), NAMESPACE, **FAST)
            with pytest.raises(KatibAccessError) as unauthorized:
                wrong.launch(experiment_body, name_suffix="tok2")
            errors.append(str(unauthorized.value))
            # A proxy that echoes the request header back in its error message (on the GET
            # that reads the existing Experiment after the next 409).
            server.fail(
                "GET",
                "experiment",
                400,
                "BadRequest",
                f"bad header Authorization: Bearer {token}",
            )
            with pytest.raises(KatibRejectedError) as echoed:
                katib.launch(experiment_body, name_suffix="tok")
            errors.append(str(echoed.value))

        sent = {r.headers.get("authorization") for r in server.requests}
        assert f"Bearer {token}" in sent, "the token must reach the API server"
    assert "401 Unauthorized" in errors[0]
    assert "credentials" in errors[0]
    assert "bad header Authorization: ***" in errors[1]
    for text in errors:
        assert token not in text and token[::-1] not in text
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("kaizen"))
    assert "retry 1 of 2" in ours
    assert token not in ours
    # Everything logged before the echoing proxy (any logger, DEBUG included) is token-free.
    before_echo = caplog.text.split("bad header")[0]
    assert token not in before_echo and token[::-1] not in before_echo


# -- configuration --------------------------------------------------------------------------------


def test_contract_from_kubeconfig_uses_context_server_token_and_namespace(
    fake_api: Any, experiment_body: dict[str, Any], tmp_path: Path
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "fake", "cluster": {"server": fake_api.url}}],
                "users": [{"name": "ci", "user": {"token": "kubeconfig-token-123456"}}],
                "contexts": [
                    {"name": "other", "context": {"cluster": "fake", "user": "ci"}},
                    {
                        "name": "tuning",
                        "context": {"cluster": "fake", "user": "ci", "namespace": NAMESPACE},
                    },
                ],
                "current-context": "other",
            }
        )
    )
    default_before = kubernetes.client.Configuration.get_default_copy().host

    katib = KatibLauncher.from_kubeconfig("tuning", config_file=kubeconfig, **FAST)
    katib.launch(experiment_body, name_suffix="kc")

    assert katib.namespace == NAMESPACE
    [post] = fake_api.requests_to("POST")
    assert post.path == EXPERIMENTS_PATH
    assert post.headers["authorization"] == "Bearer kubeconfig-token-123456"
    assert kubernetes.client.Configuration.get_default_copy().host == default_before
    other = KatibLauncher.from_kubeconfig(config_file=kubeconfig)
    assert other.namespace == "kubeflow", "a context without namespace falls back to kubeflow"


def test_contract_missing_kubeconfig_and_no_pod_give_clear_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    missing = tmp_path / "nope" / "config"
    with pytest.raises(KatibConfigError, match=f"cannot load kubeconfig '{missing}'"):
        KatibLauncher.from_kubeconfig(config_file=missing)
    with pytest.raises(KatibConfigError, match=r"context 'prod'"):
        KatibLauncher.from_kubeconfig("prod", config_file=missing)

    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(KatibConfigError, match="not running inside a Kubernetes pod"):
        KatibLauncher.in_cluster()


# -- an Experiment that is being deleted ----------------------------------------------------------


def _running_trial(experiment: str, name: str) -> dict[str, Any]:
    return katib_trial(
        experiment,
        name,
        {"units": "32"},
        [],
        state="Running",
        reason="TrialRunning",
        created="2025-01-01T00:00:01Z",
        started="2025-01-01T00:00:02Z",
        completed=None,
    )


def test_contract_retried_launch_waits_for_the_terminating_experiment_then_creates_it_anew(
    experiment_body: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    with FakeKubeApi(controllers=False) as server:
        katib = KatibLauncher(
            server.api_client(), NAMESPACE, **FAST, deletion_timeout_s=60, deletion_poll_s=POLL_S
        )
        # The first attempt of the tune step: created, trials running, then its cleanup.
        name = katib.launch(experiment_body, name_suffix="retry")
        for index in range(2):
            server.add_trial(NAMESPACE, _running_trial(name, f"{name}-{index}"))
        server.reconcile()  # Katib's controllers put their finalizers on
        first = server.experiment(NAMESPACE, name)
        assert first is not None
        assert first["metadata"]["finalizers"] == ["update-prometheus-metrics"]
        katib.cleanup(name, keep=False)
        terminating = server.experiment(NAMESPACE, name)
        assert terminating is not None and terminating["metadata"]["deletionTimestamp"]

        # The retried attempt: same body and overrides, so the very same spec digest.
        outcome: dict[str, Any] = {}

        def retried_step() -> None:
            try:
                outcome["name"] = katib.launch(experiment_body, name_suffix="retry")
            except BaseException as error:  # handed to the test thread
                outcome["error"] = error

        with caplog.at_level(logging.INFO, logger="kaizen.tuning.katib"):
            step = threading.Thread(target=retried_step)
            step.start()
            # Adopting would take one read; a second read means it is waiting the deletion out.
            server.wait_until(
                lambda: len(server.requests_to("GET", "experiment")) >= 2,
                "the launcher polling the terminating Experiment",
            )
            assert len(server.requests_to("POST")) == 2, "no create while the old one is there"
            # Katib's controller and the garbage collector finish the foreground deletion.
            passes = 0
            while (current := server.experiment(NAMESPACE, name)) is not None and current[
                "metadata"
            ]["uid"] == first["metadata"]["uid"]:
                assert server.trials(NAMESPACE), "the Experiment went before its Trials"
                server.reconcile()
                passes += 1
                assert passes < 10, "the stand-in's controllers never finished the deletion"
            step.join(timeout=60)

    assert not step.is_alive()
    assert outcome == {"name": name}, outcome
    created = server.experiment(NAMESPACE, name)
    assert created is not None
    assert created["metadata"]["uid"] != first["metadata"]["uid"], "created anew, not adopted"
    assert "deletionTimestamp" not in created["metadata"]
    assert (
        created["metadata"]["annotations"][SPEC_DIGEST_ANNOTATION]
        == first["metadata"]["annotations"][SPEC_DIGEST_ANNOTATION]
    )
    assert len(server.requests_to("POST")) == 3
    assert server.trials(NAMESPACE) == []
    assert "already exists with the same spec" not in caplog.text
    assert (
        f"Katib Experiment {NAMESPACE}/{name} is being deleted" in caplog.text
        and "finalizers: update-prometheus-metrics, foregroundDeletion" in caplog.text
    )
    assert f"Katib Experiment {NAMESPACE}/{name} is gone" in caplog.text


def test_contract_an_experiment_stuck_in_deletion_fails_the_retry_naming_its_finalizers(
    experiment_body: dict[str, Any],
) -> None:
    with FakeKubeApi(controllers=False) as server:
        katib = KatibLauncher(
            server.api_client(), NAMESPACE, **FAST, deletion_timeout_s=0.3, deletion_poll_s=POLL_S
        )
        name = katib.launch(experiment_body, name_suffix="stuck")
        server.reconcile()
        server.katib_controller_up = False  # nobody removes Katib's finalizer any more
        katib.cleanup(name, keep=False)
        while server.reconcile():  # the garbage collector does what it can
            pass
        stuck = server.experiment(NAMESPACE, name)
        assert stuck is not None and stuck["metadata"]["finalizers"] == [
            "update-prometheus-metrics"
        ]

        started = time.monotonic()
        with pytest.raises(KatibTerminatingError) as caught:
            katib.launch(experiment_body, name_suffix="stuck")

        assert time.monotonic() - started >= 0.3, "it got its whole deletion timeout"
        assert caught.value.finalizers == ["update-prometheus-metrics"]
        message = str(caught.value)
        assert f"Katib Experiment {NAMESPACE}/{name} is still being deleted after 0.3s" in message
        assert "finalizers: update-prometheus-metrics" in message
        assert "katib-controller is running" in message
        assert f"kubectl -n {NAMESPACE} get experiment {name} -o yaml" in message
        # Nothing was forced: no second create went through, the old object is untouched.
        after = server.experiment(NAMESPACE, name)
        assert after is not None and after["metadata"]["uid"] == stuck["metadata"]["uid"]
        assert len(server.requests_to("DELETE")) == 1
        assert not server.requests_to("PUT") and not server.requests_to("PATCH")


def test_contract_wait_stops_when_someone_deletes_the_running_experiment(
    experiment_body: dict[str, Any],
) -> None:
    with FakeKubeApi(controllers=False) as server:
        katib = KatibLauncher(server.api_client(), NAMESPACE, **FAST)
        name = "fraud-mlp-tpe-gone2"
        _never_finishing(server, name)
        katib.launch(experiment_body, name_suffix="gone2", max_trial_count=6)
        server.reconcile()
        # `kubectl delete experiment` (Background): Katib's finalizer holds it for now.
        kubernetes.client.CustomObjectsApi(server.api_client()).delete_namespaced_custom_object(
            "kubeflow.org", "v1beta1", NAMESPACE, "experiments", name
        )

        with pytest.raises(KatibNotFoundError) as caught:
            katib.wait(name, timeout_s=60, poll_s=POLL_S)

    message = str(caught.value)
    assert f"Katib Experiment {NAMESPACE}/{name} is being deleted" in message
    assert "finalizers: update-prometheus-metrics" in message
    assert "1/6 trials done" in message
    assert "Run the step again" in message


# -- the stand-in behaves like the API server ------------------------------------------------------


def _api(server: Any) -> kubernetes.client.CustomObjectsApi:
    return kubernetes.client.CustomObjectsApi(server.api_client())


def _status_of(error: ApiException) -> dict[str, Any]:
    return dict(json.loads(error.body))


def _create(server: Any, body: dict[str, Any]) -> dict[str, Any]:
    return dict(
        _api(server).create_namespaced_custom_object(
            "kubeflow.org", "v1beta1", NAMESPACE, "experiments", body
        )
    )


def _our_body(experiment_body: dict[str, Any], suffix: str) -> dict[str, Any]:
    return apply_overrides(experiment_body, name_suffix=suffix, namespace=NAMESPACE)


def test_contract_stand_in_foreground_deletion_keeps_the_experiment_until_its_trials_go(
    experiment_body: dict[str, Any],
) -> None:
    with FakeKubeApi(controllers=False) as server:
        body = _our_body(experiment_body, "fg")
        name = body["metadata"]["name"]
        _create(server, body)
        server.add_trial(NAMESPACE, _running_trial(name, f"{name}-1"))
        server.reconcile()
        assert server.trials(NAMESPACE)[0]["metadata"]["finalizers"] == ["clean-metrics-in-db"]

        answer = _api(server).delete_namespaced_custom_object(
            "kubeflow.org",
            "v1beta1",
            NAMESPACE,
            "experiments",
            name,
            propagation_policy="Foreground",
        )
        assert answer["metadata"]["deletionTimestamp"]
        assert answer["metadata"]["finalizers"] == [
            "update-prometheus-metrics",
            "foregroundDeletion",
        ]
        with pytest.raises(ApiException) as conflict:
            _create(server, body)
        assert conflict.value.status == 409
        status = _status_of(conflict.value)
        assert status["reason"] == "AlreadyExists"
        assert status["message"] == (
            f'object is being deleted: experiments.kubeflow.org "{name}" already exists'
        )

        server.reconcile()  # Katib drops its finalizer; the collector starts on the Trials
        held = server.experiment(NAMESPACE, name)
        assert held is not None and held["metadata"]["finalizers"] == ["foregroundDeletion"]
        [trial] = server.trials(NAMESPACE)
        assert trial["metadata"]["deletionTimestamp"]
        server.reconcile()  # the Trial goes, then the Experiment
        assert server.trials(NAMESPACE) == []
        assert server.experiment(NAMESPACE, name) is None
        assert _create(server, body)["metadata"]["name"] == name


def test_contract_stand_in_background_deletion_removes_the_experiment_before_its_trials(
    experiment_body: dict[str, Any],
) -> None:
    with FakeKubeApi(controllers=False) as server:
        body = _our_body(experiment_body, "bg")
        name = body["metadata"]["name"]
        _create(server, body)
        server.add_trial(NAMESPACE, _running_trial(name, f"{name}-1"))
        server.reconcile()
        _api(server).delete_namespaced_custom_object(
            "kubeflow.org", "v1beta1", NAMESPACE, "experiments", name
        )
        assert server.experiment(NAMESPACE, name)["metadata"]["deletionTimestamp"]

        server.reconcile()
        assert server.experiment(NAMESPACE, name) is None
        assert [t["metadata"]["name"] for t in server.trials(NAMESPACE)] == [f"{name}-1"]
        server.reconcile()
        assert server.trials(NAMESPACE) == []

        # Without finalizers a delete is immediate and answers a Success Status.
        server.katib_controller_up = False
        _create(server, body)
        answer = _api(server).delete_namespaced_custom_object(
            "kubeflow.org", "v1beta1", NAMESPACE, "experiments", name
        )
        assert answer["kind"] == "Status" and answer["status"] == "Success"
        assert server.experiment(NAMESPACE, name) is None


def test_contract_stand_in_updates_need_the_current_resource_version(
    experiment_body: dict[str, Any],
) -> None:
    api_group = ("kubeflow.org", "v1beta1", NAMESPACE, "experiments")
    with FakeKubeApi(controllers=False) as server:
        api = _api(server)
        body = _our_body(experiment_body, "rv")
        name = body["metadata"]["name"]
        read = _create(server, body)
        server.reconcile()  # Katib's controller writes its finalizer: a newer version

        stale = copy.deepcopy(read)
        stale["spec"]["maxTrialCount"] = 10
        with pytest.raises(ApiException) as conflict:
            api.replace_namespaced_custom_object(*api_group, name, stale)
        assert conflict.value.status == 409
        assert _status_of(conflict.value)["reason"] == "Conflict"
        assert "the object has been modified" in _status_of(conflict.value)["message"]
        unversioned = copy.deepcopy(stale)
        del unversioned["metadata"]["resourceVersion"]
        with pytest.raises(ApiException) as invalid:
            api.replace_namespaced_custom_object(*api_group, name, unversioned)
        assert invalid.value.status == 422
        assert "metadata.resourceVersion" in _status_of(invalid.value)["message"]

        current = api.get_namespaced_custom_object(*api_group, name)
        current["spec"]["maxTrialCount"] = 10
        updated = api.replace_namespaced_custom_object(*api_group, name, current)
        assert updated["metadata"]["generation"] == 2
        assert updated["metadata"]["finalizers"] == ["update-prometheus-metrics"]
        updated["spec"]["algorithm"]["algorithmName"] = "random"
        with pytest.raises(ApiException) as refused:
            api.replace_namespaced_custom_object(*api_group, name, updated)
        assert refused.value.status == 400
        assert (
            "only spec.parallelTrialCount, spec.maxTrialCount and spec.maxFailedTrialCount are "
            "editable"
        ) in _status_of(refused.value)["message"]
        with pytest.raises(ApiException) as stale_patch:
            api.patch_namespaced_custom_object(
                *api_group,
                name,
                {"metadata": {"resourceVersion": read["metadata"]["resourceVersion"]}},
            )
        assert stale_patch.value.status == 409

        # While it terminates it takes no new finalizer; removing the last one deletes it.
        api.delete_namespaced_custom_object(*api_group, name)
        with pytest.raises(ApiException) as no_new:
            api.patch_namespaced_custom_object(
                *api_group,
                name,
                {"metadata": {"finalizers": ["update-prometheus-metrics", "mine"]}},
            )
        assert no_new.value.status == 422
        assert "no new finalizers can be added" in _status_of(no_new.value)["message"]
        api.patch_namespaced_custom_object(*api_group, name, {"metadata": {"finalizers": None}})
        assert server.experiment(NAMESPACE, name) is None


def _set_command(body: dict[str, Any], extra: str) -> None:
    container = body["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]["spec"][
        "containers"
    ][0]
    container["command"] = [*container["command"], extra]


#: (what is wrong, how to break the body, a text both refusals must name)
WEBHOOK_RULES: list[tuple[str, Any, str]] = [
    ("name longer than 40", lambda b: b["metadata"].update(name="a" * 41), "metadata.name"),
    (
        "name not starting with a letter",
        lambda b: b["metadata"].update(name="1abc"),
        "metadata.name",
    ),
    ("no trials", lambda b: b["spec"].update(maxTrialCount=0), "spec.maxTrialCount"),
    (
        "parallel above budget",
        lambda b: b["spec"].update(parallelTrialCount=9),
        "spec.parallelTrialCount",
    ),
    (
        "failures above budget",
        lambda b: b["spec"].update(maxFailedTrialCount=9),
        "spec.maxFailedTrialCount",
    ),
    (
        "objective type",
        lambda b: b["spec"]["objective"].update(type="maximise"),
        "spec.objective.type",
    ),
    (
        "objective among additional metrics",
        lambda b: b["spec"]["objective"]["additionalMetricNames"].append("val_roc_auc"),
        "spec.objective.additionalMetricNames",
    ),
    ("no objective", lambda b: b["spec"].pop("objective"), "spec.objective"),
    (
        "unknown algorithm",
        lambda b: b["spec"]["algorithm"].update(algorithmName="bogus"),
        "spec.algorithm.algorithmName",
    ),
    (
        "unknown early stopping",
        lambda b: b["spec"]["earlyStopping"].update(algorithmName="bogus"),
        "spec.earlyStopping.algorithmName",
    ),
    ("resume policy", lambda b: b["spec"].update(resumePolicy="Sometimes"), "spec.resumePolicy"),
    (
        "parameter type",
        lambda b: b["spec"]["parameters"][0].update(parameterType="float"),
        "spec.parameters[0].parameterType",
    ),
    (
        "distribution",
        lambda b: b["spec"]["parameters"][0]["feasibleSpace"].update(distribution="gaussian"),
        "spec.parameters[0].feasibleSpace.distribution",
    ),
    (
        "int range given a list",
        lambda b: b["spec"]["parameters"][1]["feasibleSpace"].update(list=["1", "2"]),
        "spec.parameters[1].feasibleSpace.list",
    ),
    (
        "discrete list given a min",
        lambda b: b["spec"]["parameters"][4]["feasibleSpace"].update(min="1"),
        "spec.parameters[4].feasibleSpace",
    ),
    ("no search parameters", lambda b: b["spec"].pop("parameters"), "spec.parameters"),
    (
        "trial parameter referencing nothing",
        lambda b: b["spec"]["trialTemplate"]["trialParameters"][0].update(reference="nope"),
        "spec.trialTemplate.trialParameters[0].reference",
    ),
    (
        "placeholder without a trial parameter",
        lambda b: _set_command(b, "--extra=${trialParameters.extra}"),
        "${trialParameters.extra}",
    ),
    (
        "no primary container",
        lambda b: b["spec"]["trialTemplate"].pop("primaryContainerName"),
        "spec.trialTemplate.primaryContainerName",
    ),
    (
        "collector kind",
        lambda b: b["spec"]["metricsCollectorSpec"]["collector"].update(kind="Bogus"),
        "spec.metricsCollectorSpec.collector.kind",
    ),
]


@pytest.mark.parametrize(
    ("problem", "break_body", "field_text"), WEBHOOK_RULES, ids=[rule[0] for rule in WEBHOOK_RULES]
)
def test_contract_katib_webhook_and_the_local_validation_refuse_the_same_experiments(
    experiment_body: dict[str, Any], problem: str, break_body: Any, field_text: str
) -> None:
    broken = copy.deepcopy(experiment_body)
    break_body(broken)
    with pytest.raises(ExperimentSpecError) as locally:
        validate_experiment(copy.deepcopy(broken), "katib/fraud-mlp-tpe.yaml")
    assert field_text in str(locally.value)

    broken["metadata"]["namespace"] = NAMESPACE
    with FakeKubeApi(controllers=False) as server:
        with pytest.raises(ApiException) as denied:
            _create(server, broken)
        assert denied.value.status == 400
        status = _status_of(denied.value)
        assert "reason" not in status, "a webhook's admission.Errored(400) carries no reason"
        assert status["message"].startswith(
            'admission webhook "validator.experiment.katib.kubeflow.org" denied the request: '
        )
        assert field_text in status["message"]
        assert server.experiment(NAMESPACE, broken["metadata"]["name"]) is None


def test_contract_katib_defaults_are_filled_in_so_adoption_compares_our_digest(
    repo_root: Path,
) -> None:
    with FakeKubeApi(controllers=False) as server:
        for path in sorted((repo_root / "katib").glob("*.yaml")):
            sent = apply_overrides(load_experiment(path), name_suffix="d", namespace=NAMESPACE)
            assert "successCondition" not in sent["spec"]["trialTemplate"]
            stored = _create(server, sent)
            template = stored["spec"]["trialTemplate"]
            assert template["successCondition"] == (
                'status.conditions.#(type=="Complete")#|#(status=="True")#'
            )
            assert template["failureCondition"] == (
                'status.conditions.#(type=="Failed")#|#(status=="True")#'
            )
            assert stored["spec"] != sent["spec"], "Katib's webhook changed the spec"


def test_contract_stand_in_refuses_a_name_that_is_no_dns_subdomain_before_the_webhook(
    experiment_body: dict[str, Any],
) -> None:
    body = _our_body(experiment_body, "x")
    body["metadata"]["name"] = "Fraud_MLP"
    with FakeKubeApi(controllers=False) as server, pytest.raises(ApiException) as invalid:
        _create(server, body)
    assert invalid.value.status == 422
    status = _status_of(invalid.value)
    assert status["reason"] == "Invalid"
    assert status["details"]["causes"][0]["field"] == "metadata.name"
    assert "RFC 1123 subdomain" in status["message"]
