"""Lineage of a model version and the registry's status, read back from MLflow.

Nothing here writes: both read the tags and params that ``tracking`` and ``models`` record,
and report a missing piece as None rather than failing (a version registered outside a
pipeline has no Katib experiment, for example).
"""

from __future__ import annotations

import json
from typing import Any

from kaizen.platform.redaction import redact_uri
from kaizen.platform.settings import Settings
from kaizen.registry._backend import (
    EXPERIMENT_NAME,
    MLFLOW_PARENT_RUN_ID,
    TAG_PIPELINE_RUN_ID,
    TAG_ROLE,
    TAG_ROUND,
    client_for,
    iso,
    store_config,
)
from kaizen.registry.models import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    TAG_DATA_FINGERPRINT,
    TAG_FEATURE_SERVICE,
    TAG_PROMOTED_AT,
    TAG_PROMOTED_BY,
    TAG_REJECTED_AT,
    TAG_REJECTED_BY,
    TAG_REJECTED_REASON,
    ModelRegistry,
    ModelVersionInfo,
)
from kaizen.registry.tracking import (
    PARAM_DATA_FINGERPRINT,
    PARAM_FEATURE_SERVICE,
    PARAM_FEATURE_VIEWS,
    PARAM_GIT_COMMIT,
    PARAM_HPARAM_PREFIX,
    PARAM_TRANSACTIONS_FINGERPRINT,
    PARAM_WINDOW_PREFIX,
    ROLE_PIPELINE,
    ROLE_ROUND,
    TAG_GATE,
    TAG_GATE_ROUND_PREFIX,
    TAG_GATE_SUMMARY_PREFIX,
    TAG_KATIB_BEST_PARAMETERS,
    TAG_KATIB_BEST_TRIAL,
    TAG_KATIB_EXPERIMENT,
    TAG_REGISTERED_VERSION,
)


def _get_run(client: Any, run_id: str) -> Any | None:
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    try:
        return client.get_run(run_id)
    except MlflowException:
        return None


def _windows(params: dict[str, str]) -> dict[str, dict[str, str]]:
    windows: dict[str, dict[str, str]] = {}
    for key, value in params.items():
        if key.startswith(PARAM_WINDOW_PREFIX):
            window, _, edge = key.removeprefix(PARAM_WINDOW_PREFIX).rpartition(".")
            windows.setdefault(window, {})[edge] = value
    return windows


def lineage(version: int | str, *, settings: Settings) -> dict[str, Any]:
    """Trace a model version back to the data, features, tuning, code and runs that made it.

    Args:
        version: version number or alias (``champion``).
        settings: platform settings.

    Returns:
        ``model`` (name, version, aliases, sha256, content digest, registered at),
        ``mlflow_run_id`` (the run holding the files), ``parent_run_id``, ``pipeline_run_id``,
        ``data`` (fingerprint, transactions fingerprint, time windows), ``features``
        (service, views), ``tuning`` (Katib experiment, best trial, its parameters; None if
        not tuned), ``training`` (hyperparameters) and ``code`` (git commit). Pieces that were
        never recorded are None.

    Raises:
        kaizen.registry.models.ModelVersionNotFoundError: no such version or alias.
    """
    registry = ModelRegistry(settings)
    info = registry.get(version)
    client = client_for(store_config(settings))
    run = _get_run(client, info.run_id)
    run_tags: dict[str, str] = dict(run.data.tags) if run else {}
    parent = run
    if run is not None and run_tags.get(TAG_ROLE) == ROLE_ROUND:
        parent = _get_run(client, run_tags.get(MLFLOW_PARENT_RUN_ID, "")) or run
    params: dict[str, str] = dict(parent.data.params) if parent else {}
    round_params: dict[str, str] = dict(run.data.params) if run else {}
    tuning_tags = run_tags if TAG_KATIB_EXPERIMENT in run_tags else {}
    tuning = None
    if tuning_tags:
        best_parameters = json.loads(tuning_tags.get(TAG_KATIB_BEST_PARAMETERS) or "{}")
        tuning = {
            "katib_experiment": tuning_tags[TAG_KATIB_EXPERIMENT],
            "best_trial": tuning_tags.get(TAG_KATIB_BEST_TRIAL) or None,
            "best_parameters": best_parameters,
        }
    views = params.get(PARAM_FEATURE_VIEWS)
    hyperparameters = {
        key.removeprefix(PARAM_HPARAM_PREFIX): value
        for key, value in round_params.items()
        if key.startswith(PARAM_HPARAM_PREFIX)
    }
    return {
        "model": {
            "name": info.name,
            "version": info.version,
            "aliases": list(info.aliases),
            "sha256": info.sha256,
            "content_digest": info.content_digest,
            "registered_at": info.created_at,
            "source": info.source,
        },
        "mlflow_run_id": info.run_id or None,
        "parent_run_id": parent.info.run_id if parent else None,
        "pipeline_run_id": info.pipeline_run_id or None,
        "round": int(run_tags[TAG_ROUND]) if run_tags.get(TAG_ROUND, "").isdigit() else None,
        "data": {
            "fingerprint": params.get(PARAM_DATA_FINGERPRINT)
            or info.tags.get(TAG_DATA_FINGERPRINT),
            "transactions_fingerprint": params.get(PARAM_TRANSACTIONS_FINGERPRINT),
            "windows": _windows(params) or None,
        },
        "features": {
            "service": params.get(PARAM_FEATURE_SERVICE) or info.tags.get(TAG_FEATURE_SERVICE),
            "views": views.split(",") if views else None,
        },
        "tuning": tuning,
        "training": {"hyperparameters": hyperparameters or None},
        "code": {"git_commit": params.get(PARAM_GIT_COMMIT)},
    }


def _version_summary(info: ModelVersionInfo | None) -> dict[str, Any] | None:
    if info is None:
        return None
    return {
        "version": info.version,
        "aliases": list(info.aliases),
        "pipeline_run_id": info.pipeline_run_id or None,
        "registered_at": info.created_at,
        "sha256": info.sha256,
        "metrics": info.metrics,
        "promoted_at": info.tags.get(TAG_PROMOTED_AT),
        "promoted_by": info.tags.get(TAG_PROMOTED_BY),
    }


def _last_rejected(registry: ModelRegistry) -> dict[str, Any] | None:
    rejected = [v for v in registry.versions() if TAG_REJECTED_AT in v.tags]
    if not rejected:
        return None
    latest = max(rejected, key=lambda v: v.tags[TAG_REJECTED_AT])
    return {
        "version": latest.version,
        "rejected_at": latest.tags[TAG_REJECTED_AT],
        "rejected_by": latest.tags.get(TAG_REJECTED_BY),
        "reason": latest.tags.get(TAG_REJECTED_REASON, ""),
    }


def recent_runs(limit: int = 10, *, settings: Settings) -> list[dict[str, Any]]:
    """The latest pipeline runs, newest first, with their gate decisions.

    Args:
        limit: how many runs at most.
        settings: platform settings.

    Returns:
        One dict per run: ``pipeline_run_id``, ``mlflow_run_id``, ``started_at``,
        ``status`` (MLflow run status), ``gate`` (``pass``/``fail``/None when no gate ran),
        ``gate_rounds`` (``[{"round", "outcome", "reasons"}]``) and ``registered_version``.
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    config = store_config(settings)
    client = client_for(config)
    experiment = client.get_experiment_by_name(EXPERIMENT_NAME)
    if experiment is None:
        return []
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string=f"tags.`{TAG_ROLE}` = '{ROLE_PIPELINE}'",
        max_results=limit,
        order_by=["attributes.start_time DESC"],
    )
    summaries = []
    for run in runs:
        tags = dict(run.data.tags)
        rounds = []
        for key, outcome in tags.items():
            if key.startswith(TAG_GATE_ROUND_PREFIX):
                index = key.removeprefix(TAG_GATE_ROUND_PREFIX)
                rounds.append(
                    {
                        "round": int(index),
                        "outcome": outcome,
                        "reasons": tags.get(f"{TAG_GATE_SUMMARY_PREFIX}{index}", ""),
                    }
                )
        registered = tags.get(TAG_REGISTERED_VERSION, "")
        summaries.append(
            {
                "pipeline_run_id": tags.get(TAG_PIPELINE_RUN_ID),
                "mlflow_run_id": run.info.run_id,
                "started_at": iso(run.info.start_time),
                "status": run.info.status,
                "gate": tags.get(TAG_GATE),
                "gate_rounds": sorted(rounds, key=lambda item: item["round"]),
                "registered_version": int(registered) if registered.isdigit() else None,
            }
        )
    return summaries


def status(limit: int = 10, *, settings: Settings) -> dict[str, Any]:
    """The registry at a glance: champion, challenger, previous champion, recent runs.

    Args:
        limit: how many recent pipeline runs to list.
        settings: platform settings.

    Returns:
        ``model_name``, ``tracking_uri`` (credentials masked: it is for showing),
        ``champion``, ``challenger``,
        ``previous_champion`` (each None or ``{version, aliases, pipeline_run_id,
        registered_at, sha256, metrics, promoted_at, promoted_by}``), ``last_rejected``
        (None or ``{version, rejected_at, rejected_by, reason}``: the latest challenger the
        canary or an operator withdrew) and ``recent_runs`` (see :func:`recent_runs`).
    """
    registry = ModelRegistry(settings)
    by_alias = {alias: registry.by_alias(alias) for alias in (CHAMPION, CHALLENGER)}
    return {
        "model_name": registry.name,
        "tracking_uri": redact_uri(store_config(settings).tracking_uri),
        "champion": _version_summary(by_alias[CHAMPION]),
        "challenger": _version_summary(by_alias[CHALLENGER]),
        "previous_champion": _version_summary(registry.by_alias(PREVIOUS_CHAMPION)),
        "last_rejected": _last_rejected(registry),
        "recent_runs": recent_runs(limit, settings=settings),
    }
