"""The training pipeline: ingest, features, tune, train, evaluate, gate, register, deploy; notify.

``create_pipeline`` style: every input is a pipeline parameter with a default, so the same
compiled YAML runs on the embedded backend (``kaizen run``) and on Kubeflow Pipelines.

When the gate fails, the search runs again on the widened Experiment, up to ``retune_rounds``
times. KFP has no loops, so the rounds are unrolled up to ``MAX_RETUNE_ROUNDS``; each round
shows in the run graph as its own tune/train/evaluate/gate steps.

On a cluster every task reads its configuration from the ConfigMap ``kaizen-config`` and the
Secret ``kaizen-credentials`` (one key per variable of docs/configuration.md: the settings'
``KAIZEN_*`` names and the variables the libraries read), through kfp-kubernetes; kfp.local
ignores that platform configuration, so ``kaizen run`` reads the environment as before. The
pods' ServiceAccount (``kaizen-pipeline-runner``) is set on the run when it is submitted:
kfp-kubernetes 2.17 has no per-task service account.
"""

from typing import Any

from kfp import dsl, kubernetes
from pydantic import SecretStr

from components.build_features import build_features
from components.deploy_model import deploy_model
from components.evaluate_model import evaluate_model
from components.gate_model import gate_model
from components.ingest_data import ingest_data
from components.notify_run import notify_run
from components.register_model import register_model
from components.train_model import train_model
from components.tune_model import tune_model
from kaizen.platform.names import DEFAULT_PIPELINE_NAME
from kaizen.platform.settings import ENV_PREFIX, Settings
from kaizen.training.model import DEFAULT_HYPERPARAMETERS as HP

PIPELINE_NAME = DEFAULT_PIPELINE_NAME
MAX_RETUNE_ROUNDS = 2
TUNING_DATA_PVC = "kaizen-tuning-data"  # also claimed by the trial Job in katib/*.yaml
# The shared feature volume (RWX): feature builds write the parquet generations there
# (KAIZEN_FEAST_DATA_URI with feature_repo/envs/volume).
FEATURE_DATA_PVC = "kaizen-feature-data"
FEATURE_DATA_MOUNT = "/var/lib/kaizen-shared"
CONFIG_MAP = "kaizen-config"
SECRET = "kaizen-credentials"
# What the libraries read themselves (docs/configuration.md, the Feast table), beside the
# settings' own KAIZEN_* variables.
LIBRARY_VARIABLES = (
    "KAIZEN_FEAST_REGISTRY_URI",
    "KAIZEN_FEAST_DATA_URI",
    "KAIZEN_FEAST_OFFLINE_STORE",
    "FEAST_S3_ENDPOINT_URL",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL_S3",
    "KAIZEN_SPARK_MASTER",
    "KAIZEN_SPARK_IMAGE",
    "KAIZEN_SPARK_NAMESPACE",
    "KAIZEN_SPARK_DRIVER_HOST",
    "KAIZEN_S3_SECRET",
    "KAIZEN_FEAST_STAGING_URI",
)
LIBRARY_CREDENTIALS = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "KAIZEN_REDIS_CONNECTION")
# In the Secret when it carries credentials (user:password@host), else in the ConfigMap.
EITHER = ("KAIZEN_MLFLOW_TRACKING_URI",)
# Without these a task on the cluster would quietly fall back to the embedded defaults (a
# folder in the pod, SQLite feature stores, no rollout): a pod whose ConfigMap or Secret
# lacks one does not start (CreateContainerConfigError names the key).
REQUIRED_CONFIG = ("KAIZEN_STORAGE_BACKEND", "KAIZEN_FEAST_CONFIG", "KAIZEN_DEPLOY_TARGET")
REQUIRED_CREDENTIALS = ("KAIZEN_S3_ACCESS_KEY", "KAIZEN_S3_SECRET_KEY")
# Retries for tasks whose work is idempotent and talks to services that can blip (object
# store, MLflow, Feast's registry and Redis, the Kubernetes API): a retry redoes the same work
# (see each step's contract in docs/architecture.md). Ingest is not retried: it reads one
# file and its failures are the data's, which a retry would only report three times.
RETRY = {"backoff_duration": "10s", "backoff_factor": 2.0, "backoff_max_duration": "600s"}


def settings_variables() -> tuple[list[str], list[str]]:
    """The ``KAIZEN_*`` names of every setting: ``(plain, credentials)``, each sorted."""
    plain: list[str] = []
    credentials: list[str] = []
    for name, field in Settings.model_fields.items():
        variable = f"{ENV_PREFIX}{name.upper()}"
        (credentials if field.annotation is SecretStr else plain).append(variable)
    return sorted(plain), sorted(credentials)


def config_map_keys() -> list[str]:
    """Every variable a task may take from the ConfigMap (key = variable name)."""
    plain, _ = settings_variables()
    return sorted({*plain, *LIBRARY_VARIABLES})


def secret_keys() -> list[str]:
    """Every variable a task may take from the Secret (key = variable name)."""
    _, credentials = settings_variables()
    return sorted({*credentials, *LIBRARY_CREDENTIALS, *EITHER})


def on_cluster(task: dsl.PipelineTask, *, feature_volume: bool = False) -> dsl.PipelineTask:
    """Give ``task`` the cluster's configuration (and the shared feature volume if it needs it).

    Args:
        task: a task of this pipeline.
        feature_volume: mount the shared feature volume at ``FEATURE_DATA_MOUNT``.

    Returns:
        The task.
    """
    optional_config = [key for key in config_map_keys() if key not in REQUIRED_CONFIG]
    optional_secret = [key for key in secret_keys() if key not in REQUIRED_CREDENTIALS]
    kubernetes.use_config_map_as_env(task, CONFIG_MAP, {key: key for key in REQUIRED_CONFIG})
    kubernetes.use_config_map_as_env(
        task, CONFIG_MAP, {key: key for key in optional_config}, optional=True
    )
    kubernetes.use_secret_as_env(task, SECRET, {key: key for key in REQUIRED_CREDENTIALS})
    kubernetes.use_secret_as_env(task, SECRET, {key: key for key in optional_secret}, optional=True)
    if feature_volume:
        kubernetes.mount_pvc(task, pvc_name=FEATURE_DATA_PVC, mount_path=FEATURE_DATA_MOUNT)
    return task


def _train_round(
    round_index: int,
    experiment_spec: Any,
    features_task: dsl.PipelineTask,
    params: dict[str, Any],
) -> dict[str, dsl.PipelineTask]:
    """tune -> train -> evaluate -> gate, and register under ``dsl.If`` when the gate passes."""
    tune_task = tune_model(
        train_data=features_task.outputs["train_data"],
        validation_data=features_task.outputs["validation_data"],
        feature_manifest=features_task.outputs["feature_manifest"],
        experiment_spec=experiment_spec,
        tuning_backend=params["tuning_backend"],
        max_trial_count=params["max_trial_count"],
        parallel_trial_count=params["parallel_trial_count"],
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        round_index=round_index,
        learning_rate=params["learning_rate"],
        num_layers=params["num_layers"],
        units=params["units"],
        dropout=params["dropout"],
        batch_size=params["batch_size"],
    )
    # Trials are processes or pods outside KFP's cache: a cached result would hide them.
    tune_task.set_caching_options(False)
    # A retry resumes (local) or adopts the Experiment of the same name (Katib); once only,
    # as a search is long.
    on_cluster(tune_task).set_retry(num_retries=1, **RETRY)
    # On the cluster the step stages the data on the volume the Katib trial pods mount.
    kubernetes.mount_pvc(tune_task, pvc_name=TUNING_DATA_PVC, mount_path="/mnt/data")
    train_task = train_model(
        train_data=features_task.outputs["train_data"],
        validation_data=features_task.outputs["validation_data"],
        feature_manifest=features_task.outputs["feature_manifest"],
        learning_rate=tune_task.outputs["learning_rate"],
        num_layers=tune_task.outputs["num_layers"],
        units=tune_task.outputs["units"],
        dropout=tune_task.outputs["dropout"],
        batch_size=tune_task.outputs["batch_size"],
        epochs=params["epochs"],
        patience=params["patience"],
        seed=params["seed"],
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        round_index=round_index,
    )
    train_task.set_cpu_limit("2").set_memory_limit("4G")
    # Seeded: a retry trains the same model and logs into the same MLflow run.
    on_cluster(train_task).set_retry(num_retries=1, **RETRY)
    evaluate_task = evaluate_model(
        model=train_task.outputs["model"],
        test_data=features_task.outputs["test_data"],
        validation_data=features_task.outputs["validation_data"],
        feature_manifest=features_task.outputs["feature_manifest"],
        threshold_policy=params["threshold_policy"],
        target_recall=params["target_recall"],
        cost_missed_fraud=params["cost_missed_fraud"],
        cost_false_alarm=params["cost_false_alarm"],
        decision_threshold=params["decision_threshold"],
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        round_index=round_index,
    )
    # It scores the registry's current champion: a cached result would compare with a stale one.
    evaluate_task.set_caching_options(False)
    on_cluster(evaluate_task).set_retry(num_retries=2, **RETRY)
    gate_task = gate_model(
        evaluation=evaluate_task.outputs["evaluation"],
        min_accuracy=params["min_accuracy"],
        min_roc_auc=params["min_roc_auc"],
        min_recall=params["min_recall"],
        min_precision=params["min_precision"],
        regression_tolerance=params["regression_tolerance"],
        run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        round_index=round_index,
    )
    # The gate records its outcome for the notify step: a side effect, never cached. A retried
    # gate writes the same record again.
    gate_task.set_caching_options(False)
    on_cluster(gate_task).set_retry(num_retries=2, **RETRY)
    with dsl.If(gate_task.outputs["Output"] == "pass", name=f"gate-passed-round-{round_index}"):
        register_task = register_model(
            model=train_task.outputs["model"],
            decision=gate_task.outputs["decision"],
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
            round_index=round_index,
        )
        # Registering the same model for the same run returns the version registered before.
        register_task.set_caching_options(False)
        on_cluster(register_task).set_retry(num_retries=2, **RETRY)
        deploy_task = deploy_model(
            registered=register_task.outputs["registered"],
            timeout_seconds=params["deploy_timeout_seconds"],
        )
        # It reads and changes live state (the registry's aliases, the InferenceService); the
        # same version leaves the InferenceService as it is, so a retry only waits again.
        deploy_task.set_caching_options(False)
        on_cluster(deploy_task).set_retry(num_retries=2, **RETRY)
    return {"tune": tune_task, "train": train_task, "gate": gate_task}


def _retune(
    round_index: int,
    previous_gate: dsl.PipelineTask,
    features_task: dsl.PipelineTask,
    params: dict[str, Any],
) -> None:
    """On a failed gate, and while rounds remain, search the widened space once more."""
    if round_index > MAX_RETUNE_ROUNDS:
        return
    with (
        dsl.If(
            previous_gate.outputs["Output"] == "fail", name=f"gate-failed-round-{round_index - 1}"
        ),
        dsl.If(params["retune_rounds"] >= round_index, name=f"retune-round-{round_index}"),
    ):
        tasks = _train_round(round_index, params["retune_experiment_spec"], features_task, params)
        _retune(round_index + 1, tasks["gate"], features_task, params)


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Ingest card transactions, build Feast features, tune with Katib, train, "
    "evaluate against the champion, gate, register, deploy.",
)
def training_pipeline(
    source_uri: str = "",
    seed: int = HP.seed,
    rows: int = 20000,
    customers: int = 400,
    merchants: int = 80,
    days: int = 35,
    fraud_rate: float = 0.02,
    drift: float = 0.0,
    feature_repo: str = "feature_repo",
    validation_days: int = 5,
    test_days: int = 5,
    warmup_days: int = 7,
    experiment_spec: str = "katib/fraud-mlp-tpe.yaml",
    retune_experiment_spec: str = "katib/fraud-mlp-tpe-wide.yaml",
    tuning_backend: str = "local",
    max_trial_count: int = 4,
    parallel_trial_count: int = 2,
    retune_rounds: int = 1,
    learning_rate: float = HP.learning_rate,
    num_layers: int = HP.num_layers,
    units: int = HP.units,
    dropout: float = HP.dropout,
    batch_size: int = HP.batch_size,
    epochs: int = HP.epochs,
    patience: int = HP.patience,
    threshold_policy: str = "recall",
    target_recall: float = 0.85,
    cost_missed_fraud: float = 10.0,
    cost_false_alarm: float = 1.0,
    decision_threshold: float = 0.5,
    min_accuracy: float = 0.80,
    min_roc_auc: float = 0.90,
    min_recall: float = 0.50,
    min_precision: float = 0.20,
    regression_tolerance: float = 0.01,
    deploy_timeout_seconds: int = 900,
    webhook_url: str = "",
) -> None:
    """Continuous-training pipeline for the fraud model.

    Args:
        source_uri: CSV or Parquet transactions (path or file:// URI); empty generates data.
        seed: seed for data generation and training.
        rows: synthetic transactions to generate.
        customers: synthetic customers.
        merchants: synthetic merchants.
        days: days of synthetic history.
        fraud_rate: share of fraud in synthetic data.
        drift: strength of drift injected into synthetic data.
        feature_repo: path of the Feast feature repository.
        validation_days: days in the validation window.
        test_days: days in the test window (the latest).
        warmup_days: first days left out while windowed features fill up.
        experiment_spec: Katib Experiment YAML of the first search.
        retune_experiment_spec: Katib Experiment YAML with the widened space for re-tune rounds.
        tuning_backend: "local" (Optuna, trials as processes) or "katib" (Katib CR on the cluster).
        max_trial_count: trial budget per search; 0 keeps the Experiment's own.
        parallel_trial_count: trials at once; 0 keeps the Experiment's own.
        retune_rounds: re-tune rounds after a failed gate (0 to 2).
        learning_rate: Adam learning rate when the search does not set it.
        num_layers: hidden layers when the search does not set them.
        units: units per hidden layer when the search does not set them.
        dropout: dropout rate when the search does not set it.
        batch_size: training batch size when the search does not set it.
        epochs: maximum training epochs of the final training.
        patience: early-stopping patience in epochs.
        threshold_policy: how the decision threshold is chosen on the validation window:
            "recall" (the highest threshold with recall >= target_recall), "cost" (the lowest
            cost_missed_fraud * missed frauds + cost_false_alarm * false alarms) or "fixed"
            (decision_threshold). The model is registered and served with it.
        target_recall: the validation recall the "recall" policy reaches.
        cost_missed_fraud: the "cost" policy's cost of one fraud let through.
        cost_false_alarm: the "cost" policy's cost of one legit transaction flagged.
        decision_threshold: the "fixed" policy's fraud score threshold.
        min_accuracy: gate: lowest accepted accuracy at the chosen threshold.
        min_roc_auc: gate: lowest accepted ROC-AUC.
        min_recall: gate: lowest accepted recall at the chosen threshold (on test).
        min_precision: gate: lowest accepted precision at the chosen threshold (on test).
        regression_tolerance: gate: how far below the champion's ROC-AUC (same test window)
            a challenger may be.
        deploy_timeout_seconds: how long the deploy step waits for the model server or the
            InferenceService to serve the registered version.
        webhook_url: http(s) URL notified when the run ends; empty for log only.
    """
    params = dict(locals())
    notify_task = notify_run(webhook_url=webhook_url, run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER)
    notify_task.set_caching_options(False)
    notify_task.set_display_name("notify")
    # Never retried: it never fails on purpose (an unreachable webhook is recorded), and a
    # retry could post the same notification twice.
    on_cluster(notify_task)

    with dsl.ExitHandler(notify_task, name="training"):
        ingest_task = ingest_data(
            source_uri=source_uri,
            seed=seed,
            rows=rows,
            customers=customers,
            merchants=merchants,
            days=days,
            fraud_rate=fraud_rate,
            drift=drift,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )
        on_cluster(ingest_task)
        features_task = build_features(
            transactions=ingest_task.outputs["transactions"],
            feature_repo=feature_repo,
            validation_days=validation_days,
            test_days=test_days,
            warmup_days=warmup_days,
            run_id=dsl.PIPELINE_JOB_ID_PLACEHOLDER,
        )
        # Feast apply + materialize write the online store: a cached result would skip that.
        features_task.set_caching_options(False)
        # A build is staged and committed in one journaled step (docs/data.md): a retry after
        # a failure or a lost pod builds again from the same transactions.
        on_cluster(features_task, feature_volume=True).set_retry(num_retries=2, **RETRY)
        first = _train_round(0, experiment_spec, features_task, params)
        _retune(1, first["gate"], features_task, params)
