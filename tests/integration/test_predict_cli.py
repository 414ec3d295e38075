"""`kaizen predict` against a real model server on 127.0.0.1, as a user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.support.serving import (
    ServerProcess,
    export_tiny_model,
    free_port,
    http_call,
    register,
)

SERVER_MODULE = "kaizen.serving.server"
FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]
CALM = {"amount_zscore": 0.1, "merchant_risk": -0.2, "velocity_1h": 0.0}
RISKY = {"amount_zscore": 4.0, "merchant_risk": 3.0, "velocity_1h": 0.0}
MODEL = "fraud-detector"


def kaizen(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kaizen.cli", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        # Wide enough that rich never wraps a message the assertions look for.
        env={**os.environ, "COLUMNS": "250"},
    )


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimpleNamespace]:
    home = tmp_path_factory.mktemp("predict-home")
    export = export_tiny_model(tmp_path_factory.mktemp("predict-export") / "model", FEATURES)
    info = register(home, export, "predict-run", FEATURES)
    files = tmp_path_factory.mktemp("predict-files")
    vectors = files / "vectors.json"
    vectors.write_text(json.dumps([CALM, RISKY]))
    with ServerProcess(home, ["--max-batch", "8"], module=SERVER_MODULE) as process:
        yield SimpleNamespace(
            url=f"http://127.0.0.1:{process.port}",
            port=process.port,
            version=info.version,
            vectors=vectors,
            files=files,
        )


def _v1_truth(port: int) -> list[dict[str, object]]:
    status, body = http_call(port, f"/v1/models/{MODEL}:predict", {"instances": [CALM, RISKY]})
    assert status == 200
    return list(body["predictions"])


def test_vectors_from_a_file_print_probability_decision_and_version(
    server: SimpleNamespace,
) -> None:
    calm, risky = _v1_truth(server.port)

    result = kaizen("predict", "--url", server.url, "--features-json", str(server.vectors))

    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if line.startswith("│")]
    assert len(rows) == 2
    assert f"{calm['fraud_probability']:.4f}" in rows[0]
    assert f"{risky['fraud_probability']:.4f}" in rows[1]
    assert "fraud" in rows[1] and risky["is_fraud"] is True
    assert all(f"v{server.version}" in row for row in rows)


def test_json_output_is_the_servers_own_response(server: SimpleNamespace) -> None:
    result = kaizen(
        "predict", "--url", server.url, "--features-json", str(server.vectors), "--json"
    )

    assert result.returncode == 0, result.stderr
    printed = json.loads(result.stdout)["predictions"]
    # Each answer carries its own prediction id (for feedback); everything else is the server's.
    assert all(len(p.pop("prediction_id")) >= 16 for p in printed)
    truth = _v1_truth(server.port)
    for p in truth:
        p.pop("prediction_id")
    assert printed == truth


def test_v2_sends_the_tensor_from_stdin_and_agrees_with_v1(server: SimpleNamespace) -> None:
    rows = [[CALM[name] for name in FEATURES], [RISKY[name] for name in FEATURES]]
    truth = [p["fraud_probability"] for p in _v1_truth(server.port)]

    as_json = kaizen(
        "predict",
        "--url",
        server.url,
        "--protocol",
        "v2",
        "--features-json",
        "-",
        "--json",
        stdin=json.dumps(rows),
    )
    as_table = kaizen(
        "predict",
        "--url",
        server.url,
        "--protocol",
        "v2",
        "--features-json",
        "-",
        stdin=json.dumps(rows[1]),
    )

    assert as_json.returncode == 0, as_json.stderr
    body = json.loads(as_json.stdout)
    assert body["model_version"] == str(server.version)
    (output,) = body["outputs"]
    assert output["name"] == "fraud_probability"
    assert output["data"] == pytest.approx(truth, abs=1e-6)
    assert as_table.returncode == 0, as_table.stderr
    assert f"{truth[1]:.4f}" in as_table.stdout
    assert "V2 returns probabilities only" in as_table.stdout


def test_an_entity_request_to_a_server_without_feast_shows_the_servers_answer(
    server: SimpleNamespace,
) -> None:
    result = kaizen(
        "predict",
        "--url",
        server.url,
        "--customer-id",
        "C1",
        "--merchant-id",
        "M1",
        "--amount",
        "12.5",
        "--timestamp",
        "2026-05-06T12:00:00Z",
    )

    assert result.returncode == 1
    assert "server answered 400" in result.stderr
    assert "entity requests need the Feast online store" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_rejected_vector_shows_the_field_the_server_named(
    server: SimpleNamespace, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**CALM, "merchant_rsik": 1.0}))

    result = kaizen("predict", "--url", server.url, "--features-json", str(bad))

    assert result.returncode == 1
    assert "server answered 400" in result.stderr
    assert "merchant_rsik" in result.stderr


def test_a_batch_over_the_servers_limit_is_its_400(server: SimpleNamespace, tmp_path: Path) -> None:
    many = tmp_path / "many.json"
    many.write_text(json.dumps([CALM] * 9))

    result = kaizen("predict", "--url", server.url, "--features-json", str(many))

    assert result.returncode == 1
    assert "limit of 8" in result.stderr


def test_an_unknown_model_is_the_servers_404(server: SimpleNamespace) -> None:
    result = kaizen(
        "predict",
        "--url",
        server.url,
        "--model",
        "no-such-model",
        "--features-json",
        "-",
        stdin=json.dumps(CALM),
    )

    assert result.returncode == 1
    assert "server answered 404" in result.stderr
    assert "no-such-model" in result.stderr


def test_no_server_says_how_to_start_one() -> None:
    url = f"http://127.0.0.1:{free_port()}"

    result = kaizen("predict", "--url", url, "--features-json", "-", stdin=json.dumps(CALM))

    assert result.returncode == 1
    assert f"no server at {url}; start one with `kaizen serve`" in result.stderr


@pytest.mark.parametrize(
    ("args", "stdin", "option", "reason"),
    [
        (["--customer-id", "C1", "--merchant-id", "M1"], None, "--amount", "missing --amount"),
        (
            ["--customer-id", "C1", "--merchant-id", "M1", "--amount", "nan"],
            None,
            "--amount",
            "finite",
        ),
        (["--customer-id", "C1", "--merchant-id", "M1", "--amount", "x"], None, "--amount", ""),
        (
            ["--customer-id", "C", "--merchant-id", "M", "--amount", "1", "--timestamp", "noon"],
            None,
            "--timestamp",
            "ISO 8601",
        ),
        (
            [
                *["--customer-id", "C", "--merchant-id", "M", "--amount", "1"],
                *["--timestamp", "2026-05-06T12:00:00"],
            ],
            None,
            "--timestamp",
            "UTC offset",
        ),
        (["--protocol", "v2", "--customer-id", "C1"], None, "--features-json", "--protocol v2"),
        (["--protocol", "v3", "--features-json", "-"], "{}", "--protocol", "v1 or v2"),
        (["--features-json", "-"], "{not json", "--features-json", "not JSON"),
        (["--features-json", "/nowhere/vectors.json"], None, "--features-json", "cannot read"),
        (["--features-json", "-", "--protocol", "v2"], '{"a": 1}', "--features-json", "order"),
        (["--features-json", "-", "--amount", "3"], "{}", "--features-json", "not both"),
        (["--features-json", "-", "--url", "127.0.0.1:8080"], "{}", "--url", "http(s) URL"),
    ],
)
def test_bad_input_exits_2_naming_the_option(
    args: list[str], stdin: str | None, option: str, reason: str
) -> None:
    result = kaizen("predict", "--url", f"http://127.0.0.1:{free_port()}", *args, stdin=stdin)

    assert result.returncode == 2, result.stdout + result.stderr
    assert option in result.stderr
    assert reason in result.stderr
