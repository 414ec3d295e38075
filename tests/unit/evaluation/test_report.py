"""HTML report and PNG plots: real files, real images, escaped text, atomic writes."""

from __future__ import annotations

import base64
import io
import re
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from kaizen.evaluation.gate import GatePolicy, decide
from kaizen.evaluation.metrics import EvaluationResult, evaluate_scores
from kaizen.evaluation.report import write_html_report, write_plots

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EMBEDDED_PNG = re.compile(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"')


@pytest.fixture(scope="module")
def scored() -> tuple[np.ndarray, np.ndarray, EvaluationResult]:
    rng = np.random.default_rng(21)
    labels = (rng.random(600) < 0.05).astype(int)
    scores = np.clip(rng.normal(0.2 + 0.5 * labels, 0.15), 0.0, 1.0)
    return labels, scores, evaluate_scores(labels, scores, threshold=0.5)


def read_png(data: bytes) -> tuple[int, int]:
    assert data.startswith(PNG_SIGNATURE)
    with Image.open(io.BytesIO(data)) as image:
        image.load()  # decodes every pixel: a truncated file fails here
        return image.size


def test_report_holds_context_metrics_matrix_and_three_images(
    scored: tuple[np.ndarray, np.ndarray, EvaluationResult], tmp_path: Path
) -> None:
    labels, scores, result = scored
    context = {
        "model version": "20261123T1700-ab12cd34",
        "data window": "2026-10-01 .. 2026-10-31",
        "feature service": "fraud_model_v1",
        "learning rate": 0.001,
        "epochs": 12,
    }

    path = write_html_report(
        result, labels, scores, tmp_path / "out" / "report.html", "Fraud model", context
    )

    assert path == tmp_path / "out" / "report.html"
    page = path.read_text(encoding="utf-8")
    assert "<title>Fraud model</title>" in page
    for key, value in context.items():
        assert f"<td>{key}</td><td>{value}</td>" in page
    for value in (result.accuracy, result.roc_auc, result.pr_auc, result.precision, result.recall):
        assert f"<td>{value:.4f}</td>" in page
    assert (
        f"<tr><td>true legit</td><td>{result.tn}</td><td>{result.fp}</td></tr>"
        f"<tr><td>true fraud</td><td>{result.fn}</td><td>{result.tp}</td></tr>"
    ) in page
    images = EMBEDDED_PNG.findall(page)
    assert len(images) == 3
    for encoded in images:
        width, height = read_png(base64.b64decode(encoded, validate=True))
        assert width > 100 and height > 100
    assert "Gate decision" not in page  # no decision given


def test_report_needs_nothing_from_the_network(
    scored: tuple[np.ndarray, np.ndarray, EvaluationResult], tmp_path: Path
) -> None:
    labels, scores, result = scored

    page = write_html_report(result, labels, scores, tmp_path / "r.html").read_text()

    assert not re.search(r'(src|href)="(?!data:)', page)
    assert "<link" not in page and "<script" not in page and "@import" not in page


def test_report_escapes_title_and_context(
    scored: tuple[np.ndarray, np.ndarray, EvaluationResult], tmp_path: Path
) -> None:
    labels, scores, result = scored
    context = {"note": "<script>alert('x')</script>", "<b>key</b>": "a & b"}

    page = write_html_report(
        result, labels, scores, tmp_path / "r.html", "Model <i>v2</i>", context
    ).read_text()

    assert "<script" not in page and "<i>" not in page and "<b>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "Model &lt;i&gt;v2&lt;/i&gt;" in page
    assert "<td>&lt;b&gt;key&lt;/b&gt;</td><td>a &amp; b</td>" in page


def test_report_shows_the_gate_decision_with_every_reason(
    scored: tuple[np.ndarray, np.ndarray, EvaluationResult], tmp_path: Path
) -> None:
    labels, scores, result = scored
    decision = decide(result, GatePolicy(min_recall=1.0))

    page = write_html_report(
        result, labels, scores, tmp_path / "r.html", decision=decision
    ).read_text()

    assert "Gate decision" in page
    assert ">FAILED<" in page
    for reason in decision.reasons:
        assert f"<td>{reason.replace('>', '&gt;').replace('<', '&lt;')}</td>" in page
    assert decision.decided_at in page


def test_report_replaces_an_old_one_without_leaving_temporary_files(
    scored: tuple[np.ndarray, np.ndarray, EvaluationResult], tmp_path: Path
) -> None:
    labels, scores, result = scored
    path = tmp_path / "report.html"
    path.write_text("old report")

    write_html_report(result, labels, scores, path, title="New report")

    assert "New report" in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_report_refuses_labels_that_are_not_the_results(
    scored: tuple[np.ndarray, np.ndarray, EvaluationResult], tmp_path: Path
) -> None:
    labels, scores, result = scored

    with pytest.raises(ValueError, match=r"result has 600 examples with \d+ fraud, the labels"):
        write_html_report(result, labels[:-10], scores[:-10], tmp_path / "r.html")
    assert not (tmp_path / "r.html").exists()


def test_report_rejects_context_values_it_cannot_show(
    scored: tuple[np.ndarray, np.ndarray, EvaluationResult], tmp_path: Path
) -> None:
    labels, scores, result = scored

    with pytest.raises(TypeError, match="context value for 'window' must be a str, int or float"):
        write_html_report(
            result,
            labels,
            scores,
            tmp_path / "r.html",
            context={"window": ["2026-10-01"]},  # type: ignore[dict-item]
        )


def test_write_plots_writes_three_readable_pngs(
    scored: tuple[np.ndarray, np.ndarray, EvaluationResult], tmp_path: Path
) -> None:
    labels, scores, result = scored

    paths = write_plots(result, labels, scores, tmp_path / "plots")

    assert set(paths) == {"roc_curve", "pr_curve", "score_histogram"}
    for name, path in paths.items():
        assert path == tmp_path / "plots" / f"{name}.png"
        width, height = read_png(path.read_bytes())
        assert width > 100 and height > 100
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == [
        "pr_curve.png",
        "roc_curve.png",
        "score_histogram.png",
    ]


def test_plots_differ_for_different_models(
    scored: tuple[np.ndarray, np.ndarray, EvaluationResult], tmp_path: Path
) -> None:
    labels, scores, result = scored
    rng = np.random.default_rng(5)
    weak_scores = np.clip(0.5 * scores + 0.5 * rng.random(scores.size), 0.0, 1.0)
    weak = evaluate_scores(labels, weak_scores)

    strong_paths = write_plots(result, labels, scores, tmp_path / "strong")
    weak_paths = write_plots(weak, labels, weak_scores, tmp_path / "weak")

    for name in strong_paths:
        assert strong_paths[name].read_bytes() != weak_paths[name].read_bytes()
