"""Evaluation report: one self-contained HTML file and the same plots as PNG files.

The HTML embeds its images as base64 PNGs and its style inline, so it can be opened from
any artifact store (KFP's HTML viewer, MLflow, a mail attachment) with no network. Every
piece of text that comes from outside (title, context, reasons) is HTML-escaped.

matplotlib is imported inside the functions and drawn through its Agg canvas directly, so
no global backend is switched and no display is needed.
"""

from __future__ import annotations

import base64
import io
import os
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from kaizen.evaluation.metrics import EvaluationResult, validate_inputs
from kaizen.platform.fileio import write_bytes_atomic

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from kaizen.evaluation.gate import GateDecision

ContextValue = str | float | int

# File stem and human title of each plot; write_plots names its files after the stems.
PLOTS: dict[str, str] = {
    "roc_curve": "ROC curve",
    "pr_curve": "Precision-recall curve",
    "score_histogram": "Score distribution by class",
}

# Log scale once one class outnumbers the other this much, or the minority's bars vanish.
_LOG_SCALE_CLASS_RATIO = 10.0


def write_plots(
    result: EvaluationResult,
    y_true: Any,
    y_score: Any,
    directory: str | os.PathLike[str],
) -> dict[str, Path]:
    """Save the ROC, precision-recall and score-histogram plots as PNG files.

    Args:
        result: The metrics computed from ``y_true`` and ``y_score``.
        y_true: True labels, 0 (legit) or 1 (fraud).
        y_score: Fraud probabilities in ``[0, 1]``.
        directory: Where to write ``roc_curve.png``, ``pr_curve.png`` and
            ``score_histogram.png``; created if missing.

    Returns:
        Plot name (``PLOTS`` keys) to the written file's path.

    Raises:
        ValueError: Bad labels/scores, or they are not the ones ``result`` was computed from.
    """
    images = render_plots(result, y_true, y_score)
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, png in images.items():
        paths[name] = target / f"{name}.png"
        write_bytes_atomic(paths[name], png)
    return paths


def write_html_report(
    result: EvaluationResult,
    y_true: Any,
    y_score: Any,
    path: str | os.PathLike[str],
    title: str = "Model evaluation",
    context: Mapping[str, ContextValue] | None = None,
    decision: GateDecision | None = None,
) -> Path:
    """Write a self-contained HTML evaluation report, atomically.

    Args:
        result: The metrics computed from ``y_true`` and ``y_score``.
        y_true: True labels, 0 (legit) or 1 (fraud).
        y_score: Fraud probabilities in ``[0, 1]``.
        path: The HTML file to write; its folder is created if missing.
        title: Heading and page title.
        context: What was evaluated, shown as a table in the given order (model version,
            data window, feature service, ...).
        decision: The gate decision to show, if the gate has run.

    Returns:
        The path written.

    Raises:
        ValueError: Bad labels/scores, or they are not the ones ``result`` was computed from.
        TypeError: A context key is not a string or a value is not a str, int or float.
    """
    context = dict(context or {})
    for key, value in context.items():
        if not isinstance(key, str):
            raise TypeError(f"report context keys must be strings, got {key!r}")
        if not isinstance(value, str | int | float):
            raise TypeError(
                f"report context value for {key!r} must be a str, int or float, "
                f"got {type(value).__name__}"
            )
    images = render_plots(result, y_true, y_score)
    sections = [
        f"<h1>{escape(title)}</h1>",
        _context_section(context),
        _decision_section(decision) if decision is not None else "",
        _metrics_section(result),
        _confusion_section(result),
        _plots_section(images),
    ]
    page = (
        "<!DOCTYPE html>\n"
        '<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n"
        + "\n".join(section for section in sections if section)
        + "\n</body>\n</html>\n"
    )
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(target, page.encode("utf-8"))
    return target


def render_plots(result: EvaluationResult, y_true: Any, y_score: Any) -> dict[str, bytes]:
    """Draw the report's plots and return them as PNG bytes by name (``PLOTS`` keys).

    The curves are drawn from the full labels and scores, not from the downsampled curves
    stored in ``result``; ``result`` supplies the AUCs and the operating point.

    Raises:
        ValueError: Bad labels/scores, or they are not the ones ``result`` was computed from.
    """
    labels, scores = validate_inputs(y_true, y_score)
    positives = int(labels.sum())
    if labels.size != result.n or positives != result.positives:
        raise ValueError(
            f"labels do not match the evaluation result: result has {result.n} examples with "
            f"{result.positives} fraud, the labels given have {labels.size} with {positives}"
        )
    return {
        "roc_curve": _png(_roc_figure(result, labels, scores)),
        "pr_curve": _png(_pr_figure(result, labels, scores)),
        "score_histogram": _png(_histogram_figure(result, labels, scores)),
    }


def _new_figure() -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(5.5, 4.5), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)  # attaches itself to the figure
    return figure


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    # No "Software" metadata: the same inputs give the same bytes across matplotlib builds.
    figure.savefig(buffer, format="png", metadata={"Software": None})
    return buffer.getvalue()


def _roc_figure(
    result: EvaluationResult, labels: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]
) -> Figure:
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(labels, scores)
    figure = _new_figure()
    axes = figure.add_subplot()
    axes.plot(fpr, tpr, color="C0", lw=2, label=f"model (AUC = {result.roc_auc:.3f})")
    axes.plot([0, 1], [0, 1], color="grey", ls="--", lw=1, label="chance (AUC = 0.5)")
    operating_fpr = result.fp / result.negatives
    axes.plot(
        operating_fpr,
        result.recall,
        "o",
        color="C3",
        label=f"threshold {result.threshold:g}",
    )
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="False positive rate (legit flagged)",
        ylabel="True positive rate (fraud caught)",
        title="ROC curve",
    )
    axes.legend(loc="lower right")
    axes.grid(alpha=0.3)
    return figure


def _pr_figure(
    result: EvaluationResult, labels: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]
) -> Figure:
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(labels, scores)
    figure = _new_figure()
    axes = figure.add_subplot()
    # Average precision is a step-wise sum, so draw the curve as steps too.
    axes.step(
        recall, precision, where="post", color="C0", lw=2, label=f"model (AP = {result.pr_auc:.3f})"
    )
    axes.axhline(
        result.base_rate,
        color="grey",
        ls="--",
        lw=1,
        label=f"base rate ({result.base_rate:.3f})",
    )
    axes.plot(
        result.recall, result.precision, "o", color="C3", label=f"threshold {result.threshold:g}"
    )
    axes.set(
        xlim=(0, 1),
        ylim=(0, 1.01),
        xlabel="Recall (fraud caught)",
        ylabel="Precision (flagged that is fraud)",
        title="Precision-recall curve",
    )
    axes.legend(loc="lower left")
    axes.grid(alpha=0.3)
    return figure


def _histogram_figure(
    result: EvaluationResult, labels: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]
) -> Figure:
    figure = _new_figure()
    axes = figure.add_subplot()
    bins = [step / 40 for step in range(41)]  # 0.025-wide bins over [0, 1]
    for label, name, color in ((0, "legit", "C0"), (1, "fraud", "C3")):
        class_scores = scores[labels == label]
        axes.hist(
            class_scores, bins=bins, alpha=0.6, color=color, label=f"{name} (n={class_scores.size})"
        )
    axes.axvline(
        result.threshold, color="black", ls="--", lw=1, label=f"threshold {result.threshold:g}"
    )
    counts = sorted((result.positives, result.negatives))  # both > 0: validate_inputs checked
    log_scale = counts[1] / counts[0] > _LOG_SCALE_CLASS_RATIO
    if log_scale:
        axes.set_yscale("log")
    axes.set(
        xlim=(0, 1),
        xlabel="Fraud score",
        ylabel="Transactions (log scale)" if log_scale else "Transactions",
        title="Score distribution by class",
    )
    axes.legend(loc="upper right")
    axes.grid(alpha=0.3)
    return figure


def _table(header: list[str], rows: list[list[str]], css_class: str = "") -> str:
    """An HTML table; every cell is escaped here, so callers pass plain text."""
    head = "".join(f"<th>{escape(cell)}</th>" for cell in header)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(cell)}</td>" for cell in row) + "</tr>" for row in rows
    )
    attribute = f' class="{escape(css_class)}"' if css_class else ""
    return f"<table{attribute}><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _format_context(value: ContextValue) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _context_section(context: Mapping[str, ContextValue]) -> str:
    if not context:
        return '<section><h2>Context</h2><p class="muted">No context given.</p></section>'
    rows = [[key, _format_context(value)] for key, value in context.items()]
    return "<section><h2>Context</h2>" + _table(["item", "value"], rows) + "</section>"


def _metrics_section(result: EvaluationResult) -> str:
    rows = [
        ["accuracy", f"{result.accuracy:.4f}", "share classified correctly at the threshold"],
        ["roc_auc", f"{result.roc_auc:.4f}", "area under the ROC curve"],
        ["pr_auc", f"{result.pr_auc:.4f}", "average precision"],
        ["precision", f"{result.precision:.4f}", "share of flagged transactions that are fraud"],
        ["recall", f"{result.recall:.4f}", "share of fraud that is flagged"],
        ["f1", f"{result.f1:.4f}", "harmonic mean of precision and recall"],
        ["threshold", f"{result.threshold:g}", "flag fraud when score >= threshold"],
        ["examples", str(result.n), "transactions evaluated"],
        ["fraud", str(result.positives), "fraud transactions among them"],
        ["base_rate", f"{result.base_rate:.4f}", "fraud share; precision of flagging everything"],
    ]
    return "<section><h2>Metrics</h2>" + _table(["metric", "value", "meaning"], rows) + "</section>"


def _confusion_section(result: EvaluationResult) -> str:
    legit, fraud = result.class_labels
    rows = [
        [f"true {legit}", str(result.tn), str(result.fp)],
        [f"true {fraud}", str(result.fn), str(result.tp)],
    ]
    table = _table(
        ["", f"predicted {legit}", f"predicted {fraud}"], rows, css_class="confusion-matrix"
    )
    note = (
        f'<p class="muted">At threshold {result.threshold:g}: rows are the true class, '
        "columns the predicted class.</p>"
    )
    return f"<section><h2>Confusion matrix</h2>{table}{note}</section>"


def _decision_section(decision: GateDecision) -> str:
    verdict = "PASSED" if decision.passed else "FAILED"
    css = "pass" if decision.passed else "fail"
    rows = [
        [
            check.name,
            f"{check.metric} {check.operator} {check.threshold:g}",
            "missing" if check.value is None else f"{check.value:.4f}",
            "pass" if check.passed else "fail",
            check.reason,
        ]
        for check in decision.checks
    ]
    policy = ", ".join(f"{key}={value}" for key, value in decision.policy.to_dict().items())
    return (
        "<section><h2>Gate decision</h2>"
        f'<p class="verdict {css}">{verdict}</p>'
        + _table(["check", "rule", "value", "result", "reason"], rows)
        + f'<p class="muted">Decided at {escape(decision.decided_at)}; '
        f"policy: {escape(policy)}</p></section>"
    )


def _plots_section(images: Mapping[str, bytes]) -> str:
    figures = []
    for name, png in images.items():
        encoded = base64.b64encode(png).decode("ascii")
        caption = escape(PLOTS[name])
        figures.append(
            f'<figure id="{escape(name)}"><img alt="{caption}" '
            f'src="data:image/png;base64,{encoded}"><figcaption>{caption}</figcaption></figure>'
        )
    return '<section><h2>Plots</h2><div class="plots">' + "".join(figures) + "</div></section>"


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1200px; color: #222; }
h1 { margin-bottom: 0.5rem; }
section { margin: 1.5rem 0; }
table { border-collapse: collapse; }
th, td { border: 1px solid #ccc; padding: 0.3rem 0.7rem; text-align: left; }
th { background: #f3f3f3; }
table.confusion-matrix td { text-align: right; font-variant-numeric: tabular-nums; }
.muted { color: #666; font-size: 0.9rem; }
.verdict { font-size: 1.4rem; font-weight: bold; }
.verdict.pass { color: #1a7f37; }
.verdict.fail { color: #cf222e; }
.plots { display: flex; flex-wrap: wrap; gap: 1rem; }
figure { margin: 0; }
figcaption { text-align: center; color: #666; }
"""
