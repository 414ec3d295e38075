"""Live performance: precision, recall and ROC-AUC of the model on labelled predictions.

Precision and recall are those of the decisions the server answered (``decision``, at the
version's own threshold); ROC-AUC is that of the scores. A metric is judged only on enough
evidence: ``KAIZEN_MONITOR_MIN_LABELLED`` labelled predictions in all, and for recall and
ROC-AUC ``KAIZEN_MONITOR_MIN_FRAUD_LABELS`` frauds among them (ROC-AUC also needs a legit
one; precision needs at least one flagged prediction). A metric without enough evidence is
None: shown as "not enough labels", never a breach.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

METRICS = ("precision", "recall", "roc_auc")


@dataclass(frozen=True)
class LiveMetrics:
    """Live metrics of one model version (None: not enough labels to judge).

    Attributes:
        labelled: labelled predictions used.
        frauds: how many of them are labelled fraud.
        precision: of the predictions flagged, the share that were fraud.
        recall: of the frauds, the share flagged.
        roc_auc: area under the ROC curve of the scores.
    """

    labelled: int
    frauds: int
    precision: float | None
    recall: float | None
    roc_auc: float | None

    def values(self) -> dict[str, float | None]:
        return {"precision": self.precision, "recall": self.recall, "roc_auc": self.roc_auc}


def live_metrics(labelled: pd.DataFrame, *, min_labelled: int, min_frauds: int) -> LiveMetrics:
    """Precision, recall and ROC-AUC of ``labelled`` (columns ``label``, ``decision``, ``score``).

    Args:
        labelled: labelled predictions (``kaizen.monitoring.labels.labelled_predictions``).
        min_labelled: fewest labelled predictions before any metric is judged.
        min_frauds: fewest frauds among them before recall and ROC-AUC are judged.

    Returns:
        The metrics, None where the evidence is too thin.
    """
    from sklearn.metrics import precision_score, recall_score, roc_auc_score

    labels = labelled["label"].astype(int).to_numpy() if len(labelled) else []
    rows = len(labels)
    frauds = int(sum(labels))
    if rows < min_labelled:
        return LiveMetrics(rows, frauds, None, None, None)
    decisions = labelled["decision"].astype(bool).astype(int).to_numpy()
    scores = labelled["score"].astype(float).to_numpy()
    precision = (
        float(precision_score(labels, decisions, zero_division=0)) if decisions.any() else None
    )
    enough_frauds = frauds >= max(1, min_frauds)
    recall = float(recall_score(labels, decisions, zero_division=0)) if enough_frauds else None
    roc_auc = float(roc_auc_score(labels, scores)) if enough_frauds and frauds < rows else None
    return LiveMetrics(rows, frauds, precision, recall, roc_auc)
