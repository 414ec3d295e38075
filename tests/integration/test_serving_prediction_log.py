"""The prediction log and durable feedback on a real server process.

A real KServe server on 127.0.0.1 serves a real Keras model from a real SQLite registry; the
tests read the Parquet files it writes into the local object store with pandas, and stop it
with a real SIGTERM.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from kaizen.monitoring.labels import labelled_predictions
from kaizen.platform.storage import LocalObjectStore
from tests.support.serving import ServerProcess, export_tiny_model, http_call, metric, register

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
MODEL = "fraud-detector"
PREDICT = f"/v1/models/{MODEL}:predict"
INFER = f"/v2/models/{MODEL}/infer"
FEEDBACK = f"/v1/models/{MODEL}/feedback"


def vector(index: int) -> dict[str, float]:
    return {"amount_zscore": 0.5 * index, "merchant_risk": -0.25, "velocity_1h": float(index % 3)}


def wait_for(check: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.1)


def logged(home: Path) -> pd.DataFrame:
    """Every prediction the server has written, read as a user would: pandas on the folder."""
    folder = home / "objects" / "predictions" / MODEL
    if not any(folder.rglob("*.parquet")):
        return pd.DataFrame()
    return pd.read_parquet(folder)


def predict(port: int, first: int, count: int) -> list[dict[str, Any]]:
    status, body = http_call(
        port, PREDICT, {"instances": [vector(first + i) for i in range(count)]}
    )
    assert status == 200, body
    return list(body["predictions"])


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export_tiny_model(tmp_path_factory.mktemp("prediction-log") / "export", FEATURES)


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, export: Path) -> Path:
    root = tmp_path_factory.mktemp("prediction-log-home")
    register(root, export, "run-1", FEATURES)
    return root


@pytest.fixture(scope="module")
def server(home: Path) -> Iterator[SimpleNamespace]:
    env = {"KAIZEN_PREDICTION_LOG_FLUSH_SECONDS": "0.3"}
    with ServerProcess(home, ["--no-canary"], env=env) as process:
        yield SimpleNamespace(port=process.port, home=home)


def test_every_prediction_lands_as_parquet_partitioned_by_date_and_version(
    server: SimpleNamespace,
) -> None:
    v1 = predict(server.port, 0, 3) + predict(server.port, 3, 1)
    status, v2 = http_call(
        server.port,
        INFER,
        {
            "inputs": [
                {"name": "features", "shape": [1, 3], "datatype": "FP32", "data": [9.0, 1.0, 2.0]}
            ]
        },
    )
    assert status == 200, v2
    ids = [p["prediction_id"] for p in v1]

    wait_for(lambda: len(logged(server.home)) >= 5, "5 logged predictions")

    frame = logged(server.home)
    assert {
        "prediction_id",
        "time",
        "model_name",
        "variant",
        "score",
        "decision",
        *FEATURES,
    } <= set(frame.columns)
    assert set(frame["date"].astype(str)) == {datetime.now(UTC).strftime("%Y-%m-%d")}
    assert set(frame["model_version"].astype(int)) == {1}
    by_id = frame.set_index("prediction_id")
    for index, (pid, answer) in enumerate(zip(ids, v1, strict=True)):
        row = by_id.loc[pid]
        assert row["score"] == pytest.approx(answer["fraud_probability"], rel=1e-6)
        assert bool(row["decision"]) == answer["is_fraud"]
        assert [row[name] for name in FEATURES] == pytest.approx(list(vector(index).values()))
        assert row["variant"] == "champion"
    v2_rows = frame[~frame["prediction_id"].isin(ids)]
    assert len(v2_rows) == 1
    assert v2_rows.iloc[0][FEATURES].tolist() == [9.0, 1.0, 2.0]
    assert v2_rows.iloc[0]["score"] == pytest.approx(v2["outputs"][0]["data"][0], rel=1e-6)


def test_feedback_is_stored_and_joins_the_logged_predictions(server: SimpleNamespace) -> None:
    first, second = predict(server.port, 10, 2)
    labels = [
        {"prediction_id": first["prediction_id"], "is_fraud": 1},
        {"prediction_id": second["prediction_id"], "is_fraud": 0},
        {"prediction_id": "never-issued", "is_fraud": 1},
    ]

    status, body = http_call(server.port, FEEDBACK, {"feedback": labels})
    assert status == 200, body
    assert body == {"accepted": 2, "unknown": ["never-issued"], "stored": 3}
    # A correction of the first label: stored although the canary took its label already.
    status, body = http_call(
        server.port,
        FEEDBACK,
        {"feedback": [{"prediction_id": first["prediction_id"], "is_fraud": 0}]},
    )
    assert status == 200 and body["stored"] == 1 and body["unknown"] == [first["prediction_id"]]

    store = LocalObjectStore(server.home / "objects")
    wanted = {first["prediction_id"], second["prediction_id"]}
    wait_for(
        lambda: wanted <= set(labelled_predictions(store, MODEL)["prediction_id"]),
        "both predictions logged and joined with their labels",
    )
    joined = labelled_predictions(store, MODEL).set_index("prediction_id")
    assert joined.loc[first["prediction_id"], "label"] == 0  # the latest label wins
    assert joined.loc[second["prediction_id"], "label"] == 0
    assert joined.loc[first["prediction_id"], "score"] == pytest.approx(
        first["fraud_probability"], rel=1e-6
    )


def test_bad_feedback_is_refused_naming_the_field(server: SimpleNamespace) -> None:
    status, body = http_call(
        server.port, FEEDBACK, {"feedback": [{"prediction_id": "x", "is_fraud": 2}]}
    )
    assert status == 400
    assert body == {"error": "feedback[0].is_fraud: expected 0 or 1 (or true/false), got int 2"}


def test_a_full_buffer_drops_without_failing_requests_and_sigterm_flushes(
    export: Path, tmp_path: Path
) -> None:
    # Four rows fit; a write waits for four rows (or an hour): nothing is written on its own.
    env = {
        "KAIZEN_PREDICTION_LOG_MAX_ROWS": "4",
        "KAIZEN_PREDICTION_LOG_FLUSH_ROWS": "4",
        "KAIZEN_PREDICTION_LOG_FLUSH_SECONDS": "3600",
    }
    own = tmp_path / "home"
    register(own, export, "run-1", FEATURES)
    with ServerProcess(own, ["--no-canary"], env=env) as process:
        port = process.port
        first = predict(port, 0, 3)
        assert metric(port, "kaizen_prediction_log_buffered_rows", model_name=MODEL) == 3
        assert logged(own).empty

        second = predict(port, 3, 3)  # one row fits, two are dropped; the request is fine
        assert len(second) == 3
        assert (
            metric(
                port,
                "kaizen_prediction_log_dropped_rows_total",
                model_name=MODEL,
                reason="buffer_full",
            )
            == 2
        )
        wait_for(lambda: len(logged(own)) == 4, "the full buffer written")

        third = predict(port, 6, 2)  # buffered, below the write size: only SIGTERM writes it
        wait_for(
            lambda: metric(port, "kaizen_prediction_log_buffered_rows", model_name=MODEL) == 2,
            "two rows buffered",
        )
        assert process.process is not None
        process.process.send_signal(signal.SIGTERM)
        assert process.process.wait(timeout=60) == 0, process.log()

    expected = [p["prediction_id"] for p in [*first, second[0], *third]]
    assert sorted(logged(own)["prediction_id"]) == sorted(expected)
