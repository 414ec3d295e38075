"""Component: evaluate the model on the latest time window."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def evaluate_model(
    model: Input[Model],
    test_data: Input[Dataset],
    validation_data: Input[Dataset],
    feature_manifest: Input[Artifact],
    threshold_policy: str,
    target_recall: float,
    cost_missed_fraud: float,
    cost_false_alarm: float,
    decision_threshold: float,
    run_id: str,
    round_index: int,
    metrics: Output[Metrics],
    classification_metrics: Output[ClassificationMetrics],
    report: Output[HTML],
    evaluation: Output[Artifact],
) -> None:
    """Choose the operating threshold on validation; test metrics for candidate and champion.

    Args:
        model: the trained model folder.
        test_data: test rows from the latest window (Parquet).
        validation_data: validation rows the threshold is chosen on (Parquet).
        feature_manifest: feature names, service and windows (JSON).
        threshold_policy: "recall" (highest threshold with validation recall >= target_recall),
            "cost" (lowest validation cost) or "fixed" (decision_threshold).
        target_recall: the validation recall the "recall" policy reaches.
        cost_missed_fraud: the "cost" policy's cost of one fraud let through.
        cost_false_alarm: the "cost" policy's cost of one legit transaction flagged.
        decision_threshold: the "fixed" policy's threshold (flag when score >= it).
        run_id: the pipeline run id (its MLflow parent run).
        round_index: the tuning round this evaluation belongs to.
        metrics: accuracy, ROC-AUC, PR-AUC, precision, recall, F1 (at the chosen threshold),
            and the threshold.
        classification_metrics: ROC curve and confusion matrix for the Kubeflow UI.
        report: HTML report with ROC, precision-recall and score plots.
        evaluation: every metric, the threshold choice, the champion's metrics and the test
            window (JSON).
    """
    from kaizen.evaluation.metrics import HEADLINE_METRICS
    from kaizen.evaluation.threshold import ThresholdPolicy
    from kaizen.platform.settings import load_settings
    from kaizen.steps.evaluate_model import evaluate_step

    result = evaluate_step(
        model.path,
        test_data.path,
        feature_manifest.path,
        settings=load_settings(),
        evaluation_path=evaluation.path,
        report_path=report.path,
        validation_path=validation_data.path,
        threshold_policy=ThresholdPolicy(
            policy=threshold_policy,
            target_recall=target_recall,
            cost_missed_fraud=cost_missed_fraud,
            cost_false_alarm=cost_false_alarm,
            threshold=decision_threshold,
        ),
        run_id=run_id,
        round_index=round_index,
    )
    values = result["metrics"]
    for name in HEADLINE_METRICS:
        metrics.log_metric(name, float(values[name]))
    metrics.log_metric("threshold", float(values["threshold"]))
    roc = values["roc_curve"]
    classification_metrics.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
    classification_metrics.log_confusion_matrix(values["class_labels"], values["confusion_matrix"])
