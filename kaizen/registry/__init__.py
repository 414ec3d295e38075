"""MLflow tracking, the model registry (champion/challenger aliases), lineage and status.

* :mod:`kaizen.registry.tracking`: :class:`PipelineRunTracker`, one parent MLflow run per
  pipeline run, with its rounds and Katib trials nested under it;
* :mod:`kaizen.registry.models`: registering, promoting, rolling back and safely loading
  versions of the registered model;
* :mod:`kaizen.registry.lineage`: :func:`lineage` of a version and the registry's
  :func:`status`.

The store is SQLite under ``KAIZEN_HOME`` by default (``KAIZEN_MLFLOW_TRACKING_URI`` to point
elsewhere), artifacts in the object store. MLflow itself is imported only when first used.
"""

from kaizen.registry._backend import (
    EXPERIMENT_NAME,
    StoreLockTimeoutError,
    artifact_environment,
    artifact_root,
    ui_command,
)
from kaizen.registry.lineage import lineage, recent_runs, status
from kaizen.registry.models import (
    CHALLENGER,
    CHAMPION,
    PREVIOUS_CHAMPION,
    ModelIntegrityError,
    ModelRegistry,
    ModelVersionInfo,
    ModelVersionNotFoundError,
    NoPreviousChampionError,
    PromotionResult,
    RegistryError,
    challenger,
    champion,
    download_model_version,
    get_model_version,
    load_model_version,
    previous_champion,
    promote,
    register_challenger,
    reject_challenger,
    rollback,
)
from kaizen.registry.tracking import (
    PipelineRunTracker,
    TrackingError,
    code_version,
    fingerprint_parquet,
    log_gate_decision,
)

__all__ = [
    "CHALLENGER",
    "CHAMPION",
    "EXPERIMENT_NAME",
    "PREVIOUS_CHAMPION",
    "ModelIntegrityError",
    "ModelRegistry",
    "ModelVersionInfo",
    "ModelVersionNotFoundError",
    "NoPreviousChampionError",
    "PipelineRunTracker",
    "PromotionResult",
    "RegistryError",
    "StoreLockTimeoutError",
    "TrackingError",
    "artifact_environment",
    "artifact_root",
    "challenger",
    "champion",
    "code_version",
    "download_model_version",
    "fingerprint_parquet",
    "get_model_version",
    "lineage",
    "load_model_version",
    "log_gate_decision",
    "previous_champion",
    "promote",
    "recent_runs",
    "register_challenger",
    "reject_challenger",
    "rollback",
    "status",
    "ui_command",
]
