"""Component: the quality gate; its output decides whether the model is published."""

from kfp import dsl
from kfp.dsl import Artifact, Input, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def gate_model(
    evaluation: Input[Artifact],
    min_accuracy: float,
    min_roc_auc: float,
    min_recall: float,
    min_precision: float,
    regression_tolerance: float,
    run_id: str,
    round_index: int,
    decision: Output[Artifact],
) -> str:
    """Check the evaluation against the thresholds and against the champion.

    Args:
        evaluation: test metrics (JSON) from evaluate_model.
        min_accuracy: lowest accepted accuracy.
        min_roc_auc: lowest accepted ROC-AUC.
        min_recall: lowest accepted recall at the chosen decision threshold.
        min_precision: lowest accepted precision at the chosen decision threshold.
        regression_tolerance: how much lower than the champion's ROC-AUC (same test window)
            the candidate's may be; not checked while there is no champion.
        run_id: the pipeline run id; the outcome is recorded under it for the notify step.
        round_index: which tuning round this gate judges (0 = first).
        decision: pass or fail with every check and reason (JSON).

    Returns:
        "pass" or "fail".
    """
    from kaizen.platform.settings import load_settings
    from kaizen.steps.gate_model import gate_step

    result = gate_step(
        evaluation.path,
        decision.path,
        settings=load_settings(),
        min_accuracy=min_accuracy,
        min_roc_auc=min_roc_auc,
        min_recall=min_recall,
        min_precision=min_precision,
        regression_tolerance=regression_tolerance,
        run_id=run_id,
        round_index=round_index,
    )
    decision.metadata["passed"] = bool(result["passed"])
    return "pass" if result["passed"] else "fail"
