"""Component: evaluate the model on the latest time window."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    test_data: Input[Dataset],
    feature_manifest: Input[Artifact],
    decision_threshold: float,
    run_id: str,
    round_index: int,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
) -> None:
    """Compute test metrics for the candidate and the current champion on the same rows.

    Args:
        model: the trained model folder.
        test_data: test rows from the latest window (Parquet).
        feature_manifest: feature names, service and windows (JSON).
        decision_threshold: score at or above which a transaction is called fraud.
        run_id: the pipeline run id (its MLflow parent run).
        round_index: the tuning round this evaluation belongs to.
        metrics: accuracy, ROC-AUC, PR-AUC, precision, recall, F1.
        classification_metrics: ROC curve and confusion matrix for the Kubeflow UI.
        report: HTML report with ROC, precision-recall and score plots.
        evaluation: every metric, the champion's metrics and the test window (JSON).
    """
    from kaizen.evaluation.metrics import HEADLINE_METRICS
    from kaizen.platform.settings import load_settings
    from kaizen.steps.evaluate_model import evaluate_step

    result = evaluate_step(
        model.path,
        test_data.path,
        feature_manifest.path,
        settings=load_settings(),
        evaluation_path=evaluation.path,
        report_path=report.path,
        threshold=decision_threshold,
        run_id=run_id,
        round_index=round_index,
    )
    values = result["metrics"]
    for name in HEADLINE_METRICS:
        metrics.log_metric(name, float(values[name]))
    roc = values["roc_curve"]
    classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    classification_metrics.log_confusion_matrix(values["class_labels"], values["confusion_matrix"])
