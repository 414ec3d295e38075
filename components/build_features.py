"""Component: Feast apply + materialize, then point-in-time training data in three windows."""

from kfp import dsl
from kfp.dsl import Artifact, Dataset, Input, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def build_features(
    transactions: Input[Dataset],
    feature_repo: str,
    validation_days: int,
    test_days: int,
    warmup_days: int,
    run_id: str,
    train_data: Output[Dataset],
    validation_data: Output[Dataset],
    test_data: Output[Dataset],
    feature_manifest: Output[Artifact],
) -> None:
    """Build features with Feast and the temporal train/validation/test split.

    Args:
        transactions: validated transactions (Parquet).
        feature_repo: path of the Feast feature repository.
        validation_days: days in the validation window, after the training window.
        test_days: days in the test window, the latest.
        warmup_days: first days left out because their windowed features are incomplete.
        run_id: the pipeline run id (its MLflow parent run).
        train_data: training rows with point-in-time features (Parquet).
        validation_data: validation rows (Parquet).
        test_data: test rows (Parquet).
        feature_manifest: feature names, feature service, feature views and windows (JSON).
    """
    from kaizen.platform.settings import load_settings
    from kaizen.steps.build_features import features_step

    manifest = features_step(
        transactions.path,
        feature_repo,
        settings=load_settings(),
        train_path=train_data.path,
        validation_path=validation_data.path,
        test_path=test_data.path,
        manifest_path=feature_manifest.path,
        validation_days=validation_days,
        test_days=test_days,
        warmup_days=warmup_days,
        run_id=run_id,
    )
    rows = manifest.get("rows", {})
    for artifact, split in (
        (train_data, "train"),
        (validation_data, "validation"),
        (test_data, "test"),
    ):
        artifact.metadata["rows"] = int(rows.get(split, 0))
    feature_manifest.metadata["feature_service"] = manifest.get("feature_service", "")
