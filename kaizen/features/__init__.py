"""Feast feature layer: point-in-time tables, repo apply, materialization, retrieval, split.

Feast is imported lazily inside the functions that need it; importing this package is cheap.
"""

from kaizen.features.build import FeatureBuildResult, build_features, publish_feature_tables
from kaizen.features.split import (
    SplitWindows,
    TimeWindow,
    split_by_windows,
    split_windows,
    temporal_split,
)
from kaizen.features.store import (
    DEFAULT_FEATURE_SERVICE,
    FeatureRepoError,
    apply_feature_repo,
    build_training_frame,
    feature_data_dir,
    feature_names,
    feature_view_names,
    load_feature_store,
    materialize,
    online_features,
)
from kaizen.features.tables import (
    FEATURE_AVAILABILITY_DELAY,
    FeatureTables,
    compute_feature_tables,
    validate_transactions,
    write_feature_sources,
)

__all__ = [
    "DEFAULT_FEATURE_SERVICE",
    "FEATURE_AVAILABILITY_DELAY",
    "FeatureBuildResult",
    "FeatureRepoError",
    "FeatureTables",
    "SplitWindows",
    "TimeWindow",
    "apply_feature_repo",
    "build_features",
    "build_training_frame",
    "compute_feature_tables",
    "feature_data_dir",
    "feature_names",
    "feature_view_names",
    "load_feature_store",
    "materialize",
    "online_features",
    "publish_feature_tables",
    "split_by_windows",
    "split_windows",
    "temporal_split",
    "validate_transactions",
    "write_feature_sources",
]
