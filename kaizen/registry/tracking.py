"""MLflow tracking of pipeline runs: one parent run per pipeline run, found again by its id.

Every step of a pipeline run runs in its own process (a KFP pod, a ``kfp.local`` subprocess);
each builds a :class:`PipelineRunTracker` for the same pipeline run id and logs into the same
MLflow runs, which are found by tag, never by a handle passed between steps. Runs, in the
``kaizen-training`` experiment::

    <pipeline run id>           parent: pipeline parameters, training-data fingerprint, time
    |                           windows, feature service and views, git commit; evaluation
    |                           metrics per round (step = round); artifacts round-<k>/:
    |                           evaluation.json, report.html, plots/*.png, decision.json
    +-- round-<k>               one tune -> train -> evaluate -> gate round: hyperparameters,
        |                       per-epoch training metrics (step = epoch), test_* metrics,
        |                       the Katib experiment and best trial, the registered model files
        +-- <trial name>        one Katib trial: parameters, metrics per reported step, status

Logging is idempotent, so a retried step changes nothing: runs are found by tag before one
is created, metrics carry deterministic timestamps (MLflow drops an exact duplicate), params
are only ever re-logged with the same value, and trials are found by their name tag.

To browse everything (runs, nested trials, metrics, plots, reports, registered models)::

    mlflow ui --backend-store-uri sqlite:///$KAIZEN_HOME/mlflow.db --port 5000

with ``$KAIZEN_HOME`` as an absolute path (default ``$PWD/.kaizen``), then open
http://127.0.0.1:5000. :func:`kaizen.registry.ui_command` prints the command for the current
settings (with ``KAIZEN_MLFLOW_TRACKING_URI`` set it points there instead). Artifacts are
read from ``$KAIZEN_HOME/objects/mlflow`` (``s3://<bucket>/mlflow`` with the S3 backend; the
UI then needs ``MLFLOW_S3_ENDPOINT_URL`` and the AWS credentials in its environment).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.platform.settings import Settings
from kaizen.registry._backend import (
    EXPERIMENT_NAME,
    MLFLOW_PARENT_RUN_ID,
    MLFLOW_RUN_NAME,
    TAG_PIPELINE_RUN_ID,
    TAG_ROLE,
    TAG_ROUND,
    TAG_TRIAL,
    StoreConfig,
    client_for,
    ensure_experiment,
    millis,
    quote_filter_value,
    store_config,
    store_lock,
)

if TYPE_CHECKING:
    from kaizen.tuning.result import ExperimentResult, TrialRecord

ROLE_PIPELINE = "pipeline"
ROLE_ROUND = "round"
ROLE_TRIAL = "trial"

# Parameter and tag names that lineage and the registry read back.
PARAM_DATA_FINGERPRINT = "data.fingerprint"
PARAM_TRANSACTIONS_FINGERPRINT = "data.transactions_fingerprint"
PARAM_FEATURE_SERVICE = "features.service"
PARAM_FEATURE_VIEWS = "features.views"
PARAM_GIT_COMMIT = "code.git_commit"
PARAM_WINDOW_PREFIX = "data.window."
PARAM_PIPELINE_PREFIX = "pipeline."
PARAM_HPARAM_PREFIX = "hp."
TAG_KATIB_EXPERIMENT = "kaizen.katib.experiment"
TAG_KATIB_STATUS = "kaizen.katib.status"
TAG_KATIB_BEST_TRIAL = "kaizen.katib.best_trial"
TAG_KATIB_BEST_PARAMETERS = "kaizen.katib.best_parameters"
TAG_TRIAL_STATUS = "kaizen.trial.status"
TAG_TRIAL_MESSAGE = "kaizen.trial.message"
TAG_BEST_TRIAL = "kaizen.trial.best"
TAG_GATE = "kaizen.gate"
TAG_GATE_LAST_ROUND = "kaizen.gate.last_round"
TAG_GATE_ROUND_PREFIX = "kaizen.gate.round-"
TAG_GATE_SUMMARY_PREFIX = "kaizen.gate.summary.round-"
TAG_REGISTERED_VERSION = "kaizen.registered_version"
TAG_MODEL_SHA256 = "kaizen.model_sha256"
EVALUATION_METRIC_PREFIX = "test_"

# MLflow refuses larger batches and longer values; stay below its limits.
_BATCH_METRICS = 900
_BATCH_PARAMS = 90
_MAX_TAG_VALUE = 7000
_MAX_PARAM_VALUE = 6000

_TRIAL_RUN_STATUS = {
    "Succeeded": "FINISHED",
    "EarlyStopped": "FINISHED",
    "Failed": "FAILED",
    "Killed": "KILLED",
    "Running": "RUNNING",
}


class TrackingError(RuntimeError):
    """A tracking call that cannot be honoured (bad input, a conflicting re-log)."""


def fingerprint_parquet(path: str | os.PathLike[str]) -> str:
    """sha256 of a Parquet file's content: column names, dtypes and every row's values.

    Unlike a hash of the file bytes, it does not change when the same rows are written with
    another compression, row-group size or library version.

    Args:
        path: a Parquet file (or folder of Parquet files) readable by pandas.

    Returns:
        64 hex digits.

    Raises:
        FileNotFoundError: no file at ``path``.
    """
    import pandas as pd

    source = Path(path)
    if not source.exists():
        raise FileNotFoundError(f"no Parquet data at {source} to fingerprint")
    frame = pd.read_parquet(source)
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    digest.update(str(len(frame)).encode())
    if len(frame.columns):
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


def code_version(repo_dir: str | os.PathLike[str] | None = None) -> str:
    """The code version a run records when the caller knows none: ``git`` in ``repo_dir``.

    A commit the caller knows (``Settings.git_commit``, from ``KAIZEN_GIT_COMMIT`` set by the
    image build or the pipeline submitter) is passed explicitly and never comes here.
    ``GITHUB_SHA`` (GitHub Actions) wins; otherwise ``git rev-parse HEAD``, with ``+dirty``
    when tracked files have uncommitted changes.

    Args:
        repo_dir: where to ask git; None uses the current directory.

    Returns:
        The commit, or ``unknown`` outside a git checkout with no commit in the environment.
    """
    if os.environ.get("GITHUB_SHA"):
        return os.environ["GITHUB_SHA"]
    from kaizen.platform.git import git_commit

    commit = git_commit(repo_dir if repo_dir is not None else Path.cwd())
    if commit is None:
        return "unknown"
    return f"{commit.sha}+dirty" if commit.dirty else commit.sha


def _finite_scalars(values: Mapping[str, Any]) -> dict[str, float]:
    """The entries that are real numbers (bools and NaN/inf excluded)."""
    scalars: dict[str, float] = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if math.isfinite(float(value)):
            scalars[str(name)] = float(value)
    return scalars


def _chunks(items: Sequence[Any], size: int) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise FileNotFoundError(f"{what}: no file at {path}")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise TrackingError(f"{what}: {path} is not valid JSON ({error})") from None


class PipelineRunTracker:
    """Logs one pipeline run into MLflow; every step may build its own for the same id.

    Args:
        pipeline_run_id: the pipeline run's id (KFP job id / ``dsl.PIPELINE_JOB_ID_PLACEHOLDER``).
        settings: platform settings.
        experiment_name: MLflow experiment holding the runs.

    Raises:
        ValueError: an empty id, or one holding quotes, backslashes or control characters.
    """

    def __init__(
        self,
        pipeline_run_id: str,
        *,
        settings: Settings,
        experiment_name: str = EXPERIMENT_NAME,
    ) -> None:
        quote_filter_value(pipeline_run_id, "pipeline run id")
        self.pipeline_run_id = pipeline_run_id
        self.experiment_name = experiment_name
        self._config: StoreConfig = store_config(settings)
        self._round_runs: dict[int, str] = {}

    @cached_property
    def _client(self) -> Any:
        return client_for(self._config)

    @cached_property
    def experiment_id(self) -> str:
        """The MLflow experiment id (the experiment is created on first use)."""
        return ensure_experiment(self._client, self._config, self.experiment_name)

    def _find(self, **tags: str) -> list[Any]:
        clauses = [
            f"tags.`{key}` = {quote_filter_value(value, key)}" for key, value in tags.items()
        ]
        return list(
            self._client.search_runs(
                [self.experiment_id],
                filter_string=" AND ".join(clauses),
                max_results=1000,
                order_by=["attributes.start_time ASC"],
            )
        )

    @cached_property
    def run_id(self) -> str:
        """The parent MLflow run of this pipeline run, created on first use."""
        wanted = {TAG_ROLE: ROLE_PIPELINE, TAG_PIPELINE_RUN_ID: self.pipeline_run_id}
        found = self._find(**wanted)
        if found:
            return str(found[0].info.run_id)
        with store_lock(self._config):
            found = self._find(**wanted)
            if found:
                return str(found[0].info.run_id)
            run = self._client.create_run(
                self.experiment_id,
                tags={**wanted, MLFLOW_RUN_NAME: self.pipeline_run_id},
                run_name=self.pipeline_run_id,
            )
            return str(run.info.run_id)

    def round_run_id(self, round_index: int = 0) -> str:
        """The nested run of one tune/train/evaluate/gate round, created on first use.

        Args:
            round_index: 0 for the first round, k for the k-th re-tune round.

        Returns:
            The MLflow run id.
        """
        if isinstance(round_index, bool) or not isinstance(round_index, int) or round_index < 0:
            raise ValueError(f"round_index must be an integer >= 0, got {round_index!r}")
        if round_index in self._round_runs:
            return self._round_runs[round_index]
        wanted = {
            TAG_ROLE: ROLE_ROUND,
            TAG_PIPELINE_RUN_ID: self.pipeline_run_id,
            TAG_ROUND: str(round_index),
        }
        parent = self.run_id
        found = self._find(**wanted)
        if not found:
            with store_lock(self._config):
                found = self._find(**wanted)
                if not found:
                    name = f"round-{round_index}"
                    found = [
                        self._client.create_run(
                            self.experiment_id,
                            tags={**wanted, MLFLOW_PARENT_RUN_ID: parent, MLFLOW_RUN_NAME: name},
                            run_name=name,
                        )
                    ]
        self._round_runs[round_index] = str(found[0].info.run_id)
        return self._round_runs[round_index]

    def _log(
        self,
        run_id: str,
        *,
        params: Mapping[str, object] | None = None,
        metrics: Sequence[tuple[str, float, int, int]] = (),
        tags: Mapping[str, object] | None = None,
    ) -> None:
        """Log params, ``(key, value, timestamp, step)`` metrics and tags in batches."""
        from mlflow.entities import Metric, Param, RunTag

        param_items = []
        for key, value in (params or {}).items():
            text = str(value)
            if len(text) > _MAX_PARAM_VALUE:
                raise TrackingError(
                    f"param {key!r} is {len(text)} characters long; MLflow keeps at most "
                    f"{_MAX_PARAM_VALUE}"
                )
            param_items.append(Param(key, text))
        tag_items = [
            RunTag(key, str(value)[:_MAX_TAG_VALUE]) for key, value in (tags or {}).items()
        ]
        metric_items = [Metric(key, value, ts, step) for key, value, ts, step in metrics]
        with store_lock(self._config):
            if param_items:
                self._check_params(run_id, param_items)
            for chunk in _chunks(param_items, _BATCH_PARAMS):
                self._client.log_batch(run_id, params=list(chunk))
            for chunk in _chunks(tag_items, _BATCH_PARAMS):
                self._client.log_batch(run_id, tags=list(chunk))
            for chunk in _chunks(metric_items, _BATCH_METRICS):
                self._client.log_batch(run_id, metrics=list(chunk))

    def _check_params(self, run_id: str, params: Sequence[Any]) -> None:
        # MLflow's own refusal is a generic database error; name the param and both values.
        logged = self._client.get_run(run_id).data.params
        for param in params:
            if param.key in logged and logged[param.key] != param.value:
                raise TrackingError(
                    f"pipeline run {self.pipeline_run_id!r}: param {param.key!r} was logged as "
                    f"{logged[param.key]!r} and cannot change to {param.value!r} (MLflow params "
                    "are write-once; a different value means a different run)"
                )

    def _start_time(self, run_id: str) -> int:
        return int(self._client.get_run(run_id).info.start_time)

    def log_pipeline_params(self, params: Mapping[str, object]) -> None:
        """Record the pipeline's parameters on the parent run as ``pipeline.<name>``.

        Args:
            params: parameter name to value (values are stored as strings).

        Raises:
            TrackingError: a parameter was logged before with a different value.
        """
        self._log(
            self.run_id,
            params={f"{PARAM_PIPELINE_PREFIX}{name}": value for name, value in params.items()},
        )

    def log_data(
        self,
        *,
        manifest: Mapping[str, Any] | None = None,
        training_data: str | os.PathLike[str] | None = None,
        transactions: str | os.PathLike[str] | None = None,
        git_commit: str | None = None,
    ) -> dict[str, str]:
        """Record what the run trained on: data fingerprints, windows, features, code version.

        Args:
            manifest: the feature build manifest (``feature_service``, ``feature_views``,
                ``feature_names``, ``windows``); None records no feature lineage.
            training_data: the training split Parquet; its content fingerprint becomes
                ``data.fingerprint``.
            transactions: the ingested transactions Parquet (``data.transactions_fingerprint``).
            git_commit: the code version (``Settings.git_commit``); None asks
                :func:`code_version`.

        Returns:
            The params that were logged.

        Raises:
            TrackingError: a value differs from one logged before for this pipeline run.
        """
        params: dict[str, str] = {
            PARAM_GIT_COMMIT: git_commit or code_version(),
            PARAM_PIPELINE_PREFIX + "run_id": self.pipeline_run_id,
        }
        if training_data is not None:
            params[PARAM_DATA_FINGERPRINT] = fingerprint_parquet(training_data)
        if transactions is not None:
            params[PARAM_TRANSACTIONS_FINGERPRINT] = fingerprint_parquet(transactions)
        if manifest is not None:
            if manifest.get("feature_service"):
                params[PARAM_FEATURE_SERVICE] = str(manifest["feature_service"])
            if manifest.get("feature_views"):
                params[PARAM_FEATURE_VIEWS] = ",".join(map(str, manifest["feature_views"]))
            if manifest.get("feature_names"):
                params["features.count"] = str(len(manifest["feature_names"]))
            for window, bounds in dict(manifest.get("windows") or {}).items():
                for edge in ("start", "end"):
                    if bounds.get(edge):
                        params[f"{PARAM_WINDOW_PREFIX}{window}.{edge}"] = str(bounds[edge])
            for name, count in dict(manifest.get("rows") or {}).items():
                params[f"data.rows.{name}"] = str(count)
        self._log(self.run_id, params=params)
        return params

    def log_training(self, model_dir: str | os.PathLike[str], *, round_index: int = 0) -> str:
        """Record a training run from its export folder (``metadata.json``) on the round run.

        Logs the hyperparameters (``hp.<name>``), every epoch's Keras metrics with
        ``step = epoch`` (1-based), the exported model's train/validation metrics
        (``final_train_<m>``, ``final_val_<m>``), ``best_epoch`` and ``epochs_run``.

        Args:
            model_dir: the folder ``kaizen.training.train.train`` exported.
            round_index: the round the model was trained in.

        Returns:
            The round run id.

        Raises:
            FileNotFoundError: the folder holds no ``metadata.json``.
        """
        metadata = _read_json(Path(model_dir) / "metadata.json", "training metadata")
        run_id = self.round_run_id(round_index)
        base = self._start_time(run_id)
        metrics: list[tuple[str, float, int, int]] = []
        for name, values in dict(metadata.get("history") or {}).items():
            for epoch, value in enumerate(values, start=1):
                metrics.append((str(name), float(value), base + epoch, epoch))
        last = int(metadata.get("epochs_run") or 0)
        final = dict(metadata.get("metrics") or {})
        for split, prefix in (("train", "final_train_"), ("validation", "final_val_")):
            for name, value in _finite_scalars(dict(final.get(split) or {})).items():
                metrics.append((prefix + name, value, base + last, last))
        for name in ("best_epoch", "epochs_run"):
            if name in metadata:
                metrics.append((name, float(metadata[name]), base + last, last))
        params: dict[str, object] = {
            f"{PARAM_HPARAM_PREFIX}{name}": value
            for name, value in dict(metadata.get("hparams") or {}).items()
        }
        data = dict(metadata.get("data") or {})
        for name in ("train_rows", "validation_rows", "train_sha256", "validation_sha256"):
            if name in data:
                params[f"training.{name}"] = data[name]
        self._log(
            run_id,
            params=params,
            metrics=metrics,
            tags={TAG_MODEL_SHA256: metadata.get("sha256", "")},
        )
        return run_id

    def log_evaluation(
        self,
        evaluation: Mapping[str, Any] | str | os.PathLike[str],
        *,
        round_index: int = 0,
        report: str | os.PathLike[str] | None = None,
        plots: str | os.PathLike[str] | Mapping[str, str | os.PathLike[str]] | None = None,
    ) -> dict[str, float]:
        """Record the evaluation on the latest window: metrics and report artifacts.

        Metrics go to the round run as ``test_<name>`` and to the parent run with
        ``step = round_index``; the evaluation JSON, the HTML report and the PNG plots go to
        the parent run's artifacts under ``round-<k>/``.

        Args:
            evaluation: the evaluate step's JSON (``{"metrics": {...}, "rows": n, ...}``), as a
                dict or a path.
            round_index: the round evaluated.
            report: the HTML report file.
            plots: a folder of PNG plots (``kaizen.evaluation.report.write_plots``) or a
                mapping of plot name to file.

        Returns:
            The metrics logged, by MLflow name.
        """
        if not isinstance(evaluation, Mapping):
            evaluation = _read_json(Path(evaluation), "evaluation")
        if not isinstance(evaluation, Mapping) or not isinstance(
            evaluation.get("metrics"), Mapping
        ):
            shown = sorted(evaluation) if isinstance(evaluation, Mapping) else type(evaluation)
            raise TrackingError(f"evaluation must hold a 'metrics' object, got {shown}")
        values = {
            EVALUATION_METRIC_PREFIX + name: value
            for name, value in _finite_scalars(evaluation["metrics"]).items()
        }
        if isinstance(evaluation.get("rows"), int):
            values[EVALUATION_METRIC_PREFIX + "rows"] = float(evaluation["rows"])
        round_run = self.round_run_id(round_index)
        round_base = self._start_time(round_run)
        self._log(
            round_run,
            metrics=[(name, value, round_base, 0) for name, value in values.items()],
        )
        parent_base = self._start_time(self.run_id)
        self._log(
            self.run_id,
            metrics=[
                (name, value, parent_base + round_index, round_index)
                for name, value in values.items()
            ],
        )
        folder = f"round-{round_index}"
        with store_lock(self._config):
            self._log_json_artifact(dict(evaluation), folder, "evaluation.json")
            if report is not None:
                self._log_file(Path(report), folder)
            if plots is not None:
                paths = (
                    sorted(Path(plots).glob("*.png"))
                    if not isinstance(plots, Mapping)
                    else [Path(path) for path in plots.values()]
                )
                for path in paths:
                    self._log_file(path, f"{folder}/plots")
        return values

    def _log_file(self, path: Path, artifact_path: str) -> None:
        if not path.is_file():
            raise FileNotFoundError(f"artifact to log does not exist: {path}")
        self._client.log_artifact(self.run_id, os.fspath(path), artifact_path)

    def _log_json_artifact(self, payload: Mapping[str, Any], folder: str, name: str) -> None:
        import tempfile

        with tempfile.TemporaryDirectory(prefix="kaizen-mlflow-") as scratch:
            path = Path(scratch) / name
            path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
            self._client.log_artifact(self.run_id, os.fspath(path), folder)

    def log_tuning(self, result: ExperimentResult, *, round_index: int = 0) -> dict[str, str]:
        """Record a Katib experiment: its best trial on the round run, each trial nested under it.

        A trial already logged (same name) is updated, never duplicated, so a retried tune
        step leaves one run per trial.

        Args:
            result: the experiment outcome (local Optuna executor or Katib).
            round_index: the round the experiment ran in.

        Returns:
            Trial name to its MLflow run id.
        """
        round_run = self.round_run_id(round_index)
        best = (result.optimal_trial or {}).get("bestTrialName") or ""
        tags: dict[str, object] = {
            TAG_KATIB_EXPERIMENT: result.name,
            TAG_KATIB_STATUS: result.status,
            TAG_KATIB_BEST_TRIAL: best,
        }
        if best:
            tags[TAG_KATIB_BEST_PARAMETERS] = json.dumps(result.best_parameters(), sort_keys=True)
        self._log(round_run, tags=tags)
        existing = {
            run.data.tags.get(TAG_TRIAL, ""): str(run.info.run_id)
            for run in self._find(
                **{
                    TAG_ROLE: ROLE_TRIAL,
                    TAG_PIPELINE_RUN_ID: self.pipeline_run_id,
                    TAG_ROUND: str(round_index),
                }
            )
        }
        base = self._start_time(round_run)
        runs: dict[str, str] = {}
        for trial in result.trials:
            run_id = existing.get(trial.name)
            if run_id is None:
                run_id = self._create_trial_run(trial, round_run, round_index, base)
            runs[trial.name] = run_id
            self._log_trial(run_id, trial, is_best=trial.name == best, base=base)
        return runs

    def _create_trial_run(
        self, trial: TrialRecord, parent_run: str, round_index: int, base: int
    ) -> str:
        tags = {
            TAG_ROLE: ROLE_TRIAL,
            TAG_PIPELINE_RUN_ID: self.pipeline_run_id,
            TAG_ROUND: str(round_index),
            TAG_TRIAL: trial.name,
            MLFLOW_PARENT_RUN_ID: parent_run,
            MLFLOW_RUN_NAME: trial.name,
        }
        with store_lock(self._config):
            found = self._find(
                **{key: tags[key] for key in (TAG_ROLE, TAG_PIPELINE_RUN_ID, TAG_ROUND, TAG_TRIAL)}
            )
            if found:
                return str(found[0].info.run_id)
            run = self._client.create_run(
                self.experiment_id,
                start_time=millis(trial.started_at) or base,
                tags=tags,
                run_name=trial.name,
            )
            return str(run.info.run_id)

    def _log_trial(self, run_id: str, trial: TrialRecord, *, is_best: bool, base: int) -> None:
        start = millis(trial.started_at) or base
        metrics: list[tuple[str, float, int, int]] = []
        last_step = 0
        reported: dict[str, float] = {}
        for step, report in trial.intermediate:
            last_step = max(last_step, step)
            for name, value in report.items():
                metrics.append((name, float(value), start + step, step))
                reported[name] = float(value)
        for name, value in trial.metrics.items():
            # The final value is usually the last report; log it only when it differs.
            if reported.get(name) != float(value):
                metrics.append((name, float(value), start + last_step + 1, last_step + 1))
        tags: dict[str, object] = {TAG_TRIAL_STATUS: trial.status, TAG_BEST_TRIAL: str(is_best)}
        if trial.message:
            tags[TAG_TRIAL_MESSAGE] = trial.message
        self._log(run_id, params=dict(trial.parameters), metrics=metrics, tags=tags)
        status = _TRIAL_RUN_STATUS[trial.status]
        if status != "RUNNING":
            with store_lock(self._config):
                self._client.set_terminated(
                    run_id, status=status, end_time=millis(trial.finished_at) or start
                )

    def log_gate_decision(self, decision: Mapping[str, Any], *, round_index: int = 0) -> None:
        """Record a gate decision: tags on the parent and round runs, ``decision.json`` artifact.

        The parent's ``kaizen.gate`` is ``pass`` once any round passed, else ``fail``;
        ``kaizen.gate.round-<k>`` holds each round's outcome. The round run is marked finished.

        Args:
            decision: ``GateDecision.to_dict()`` (at least ``passed``; ``reasons`` shown).
            round_index: the round decided.

        Raises:
            TrackingError: ``decision`` has no boolean ``passed``.
        """
        passed = decision.get("passed")
        if not isinstance(passed, bool):
            raise TrackingError(
                f"gate decision must hold a boolean 'passed', got {passed!r} "
                f"(keys {sorted(decision)})"
            )
        outcome = "pass" if passed else "fail"
        reasons = "; ".join(str(reason) for reason in decision.get("reasons") or [])
        round_run = self.round_run_id(round_index)
        with store_lock(self._config):
            tags = self._client.get_run(self.run_id).data.tags
            outcomes = {
                key: value for key, value in tags.items() if key.startswith(TAG_GATE_ROUND_PREFIX)
            }
            outcomes[f"{TAG_GATE_ROUND_PREFIX}{round_index}"] = outcome
            overall = "pass" if "pass" in outcomes.values() else "fail"
            last = max(int(tags.get(TAG_GATE_LAST_ROUND, "0")), round_index)
            self._log(
                self.run_id,
                tags={
                    f"{TAG_GATE_ROUND_PREFIX}{round_index}": outcome,
                    f"{TAG_GATE_SUMMARY_PREFIX}{round_index}": reasons,
                    TAG_GATE: overall,
                    TAG_GATE_LAST_ROUND: last,
                },
            )
            self._log(round_run, tags={TAG_GATE: outcome})
            self._log_json_artifact(dict(decision), f"round-{round_index}", "decision.json")
            self._client.set_terminated(round_run, status="FINISHED")

    def finish(self, status: str = "FINISHED") -> None:
        """Mark the parent run (and any unfinished round run) ended.

        Args:
            status: ``FINISHED``, ``FAILED`` or ``KILLED``.
        """
        if status not in ("FINISHED", "FAILED", "KILLED"):
            raise ValueError(f"status must be FINISHED, FAILED or KILLED, got {status!r}")
        with store_lock(self._config):
            for run in self._find(
                **{TAG_ROLE: ROLE_ROUND, TAG_PIPELINE_RUN_ID: self.pipeline_run_id}
            ):
                if run.info.status == "RUNNING":
                    self._client.set_terminated(run.info.run_id, status=status)
            self._client.set_terminated(self.run_id, status=status)


def log_gate_decision(
    pipeline_run_id: str,
    decision: Mapping[str, Any],
    *,
    round_index: int = 0,
    settings: Settings,
) -> None:
    """Record a gate decision on the pipeline run's MLflow runs (see
    :meth:`PipelineRunTracker.log_gate_decision`)."""
    PipelineRunTracker(pipeline_run_id, settings=settings).log_gate_decision(
        decision, round_index=round_index
    )
