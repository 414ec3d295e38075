"""Durable feedback labels: stored by date, latest wins, joined to the prediction log, bulk files
validated row by row, and ``kaizen feedback FILE``."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from kaizen.cli import app
from kaizen.monitoring.labels import (
    Label,
    LabelFileError,
    labelled_predictions,
    read_label_file,
    read_labels,
    store_labels,
)
from kaizen.monitoring.predictions import LoggedPrediction, PredictionLog
from kaizen.platform.storage import LocalObjectStore

MODEL = "fraud-detector"
T0 = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)


def at(hour: int, day: int = 3) -> datetime:
    return datetime(2026, 12, day, hour, 0, tzinfo=UTC)


def log_predictions(store: LocalObjectStore, ids: list[str]) -> None:
    log = PredictionLog(MODEL, store)
    log.record(
        [
            LoggedPrediction(pid, T0, 1, "champion", 0.7, True, (1.0,), ("amount_zscore",))
            for pid in ids
        ]
    )
    log.flush()


def test_labels_are_stored_by_date_and_the_latest_one_wins(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store_labels(store, MODEL, [Label("p1", 1, at(10)), Label("p2", 0, at(10))], source="api")
    # A correction two days later (chargeback reversed), and a late copy of an older verdict.
    store_labels(store, MODEL, [Label("p1", 0, at(8, day=5))], source="file")
    store_labels(store, MODEL, [Label("p2", 1, at(9))], source="file")

    days = sorted(p.parent.name for p in (tmp_path / "labels" / MODEL).rglob("*.parquet"))
    assert days == ["date=2026-12-03", "date=2026-12-03", "date=2026-12-05"]
    latest = read_labels(store, MODEL).set_index("prediction_id")
    assert latest.loc["p1", "label"] == 0 and latest.loc["p1", "source"] == "file"
    assert latest.loc["p2", "label"] == 0  # stored later, but known earlier: 10:00 wins
    assert len(read_labels(store, MODEL, latest_only=False)) == 4


def test_same_time_labels_resolve_to_the_one_stored_last(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store_labels(store, MODEL, [Label("p1", 1, at(10))], source="api", received=at(11))
    store_labels(store, MODEL, [Label("p1", 0, at(10))], source="api", received=at(12))
    assert read_labels(store, MODEL)["label"].tolist() == [0]


def test_labels_join_logged_predictions_by_id(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    log_predictions(store, ["p1", "p2", "p3"])
    labels = [Label("p1", 1, at(12)), Label("never-logged", 1, at(12))]
    store_labels(store, MODEL, labels, source="api")

    joined = labelled_predictions(store, MODEL)

    assert joined["prediction_id"].tolist() == ["p1"]
    assert joined.loc[0, "label"] == 1 and joined.loc[0, "score"] == 0.7
    assert joined.loc[0, "label_time"] == pd.Timestamp(at(12))
    assert int(joined.loc[0, "model_version"]) == 1


def test_a_csv_file_reads_with_and_without_times(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(
        "prediction_id,label,time\np1,1,2026-12-01T08:00:00Z\np2,false,\np3,0,2026-12-02 10:00\n"
    )
    labels = read_label_file(path, now=T0)
    assert labels == [
        Label("p1", 1, at(8, day=1)),
        Label("p2", 0, T0),
        Label("p3", 0, at(10, day=2)),  # no offset: UTC
    ]


def test_a_parquet_file_reads_without_a_time_column(tmp_path: Path) -> None:
    path = tmp_path / "labels.parquet"
    pd.DataFrame({"prediction_id": ["p1", "p2"], "label": [1, 0]}).to_parquet(path)
    assert read_label_file(path, now=T0) == [Label("p1", 1, T0), Label("p2", 0, T0)]


def test_bad_rows_are_named_by_row_number(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("prediction_id,label,time\np1,1,\n,1,\np3,2,\np4,1,yesterday\n")
    with pytest.raises(LabelFileError) as error:
        read_label_file(path)
    message = str(error.value)
    assert "3 bad row(s) of 4, nothing stored" in message
    assert "row 3: prediction_id: expected a non-empty id, got ''" in message
    assert "row 4: label: expected 0 or 1 (or true/false), got '2'" in message
    assert (
        "row 5: time: expected an ISO 8601 time such as 2026-12-03T09:30:00Z, got 'yesterday'"
        in message
    )
    assert "row 2" not in message


def test_many_bad_rows_are_summarised(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("prediction_id,label\n" + "".join(f"p{i},x\n" for i in range(25)))
    with pytest.raises(LabelFileError) as error:
        read_label_file(path)
    message = str(error.value)
    assert "row 21:" in message and "row 22:" not in message
    assert "... and 5 more bad row(s)" in message


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "l.csv",
            "id,label\np1,1\n",
            "missing column(s) ['prediction_id']; unknown column(s) ['id']",
        ),
        ("l.csv", "prediction_id,label\n", "no rows"),
        ("l.json", "{}", "expected a .csv or .parquet file, got '.json'"),
        ("l.parquet", "not parquet", "cannot read it as parquet"),
    ],
)
def test_unusable_files_are_refused_with_the_reason(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(LabelFileError) as error:
        read_label_file(path)
    assert expected in str(error.value)


def test_kaizen_feedback_stores_a_file_and_reports_the_matches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIZEN_HOME", str(tmp_path))
    store = LocalObjectStore(tmp_path / "objects")
    log_predictions(store, ["p1", "p2"])
    path = tmp_path / "labels.csv"
    path.write_text("prediction_id,label\np1,1\np9,0\n")

    result = CliRunner().invoke(app, ["feedback", str(path)])

    assert result.exit_code == 0, result.output
    assert "stored 2 label(s) for fraud-detector" in result.output
    assert "1 of 2 prediction id(s) match the prediction log" in result.output
    assert labelled_predictions(store, MODEL)["prediction_id"].tolist() == ["p1"]


def test_kaizen_feedback_refuses_a_bad_file_and_stores_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAIZEN_HOME", str(tmp_path))
    path = tmp_path / "labels.csv"
    path.write_text("prediction_id,label\np1,1\np2,maybe\n")

    result = CliRunner().invoke(app, ["feedback", str(path)])

    assert result.exit_code == 2
    assert "row 3: label: expected 0 or 1 (or true/false), got 'maybe'" in result.output
    assert read_labels(LocalObjectStore(tmp_path / "objects"), MODEL).empty
