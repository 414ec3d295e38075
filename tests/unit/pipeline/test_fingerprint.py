"""Data fingerprints: the key the retrain workflow deduplicates training runs by."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from kaizen.cli import app
from kaizen.data.generator import GeneratorConfig, generate_transactions
from kaizen.pipeline.fingerprint import (
    FINGERPRINT_CHARS,
    FingerprintError,
    file_fingerprint,
    synthetic_fingerprint,
)

runner = CliRunner()


def test_a_file_fingerprint_is_what_sha256sum_prints(tmp_path: Path) -> None:
    # More than one read chunk, so the streamed digest is checked across chunk borders.
    data = tmp_path / "transactions.csv"
    data.write_bytes(b"transaction_id,amount\n" + b"T1,12.5\n" * 400_000)
    assert shutil.which("sha256sum"), "coreutils' sha256sum is the reference here"
    expected = subprocess.run(
        ["sha256sum", str(data)], capture_output=True, text=True, check=True
    ).stdout.split()[0]

    assert file_fingerprint(data) == expected
    assert file_fingerprint(f"file://{data}") == expected


def test_a_changed_row_changes_the_file_fingerprint(tmp_path: Path) -> None:
    first, second = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_text("transaction_id,amount\nT1,12.5\n")
    second.write_text("transaction_id,amount\nT1,12.6\n")

    assert file_fingerprint(first) != file_fingerprint(second)


def test_the_same_synthetic_parameters_however_written_give_one_fingerprint() -> None:
    spelled_out = synthetic_fingerprint({"seed": "7", "rows": "500", "drift": "0"})
    typed = synthetic_fingerprint({"seed": 7, "rows": 500, "drift": 0.0})
    # Parameters that do not shape the data are left out; defaults count as given.
    with_training_options = synthetic_fingerprint(
        {"seed": 7, "rows": 500, "epochs": 30, "min_roc_auc": 0.95, "fraud_rate": 0.02}
    )

    assert spelled_out == typed == with_training_options
    assert len(typed) == FINGERPRINT_CHARS and int(typed, 16) >= 0


def test_synthetic_fingerprints_agree_exactly_when_the_generated_rows_do() -> None:
    base = {"seed": 3, "rows": 300, "customers": 20, "merchants": 8, "days": 10}

    def rows(values: dict[str, int | float]) -> pd.DataFrame:
        return generate_transactions(GeneratorConfig(**values))  # type: ignore[arg-type]

    same = dict(base)
    other_seed = {**base, "seed": 4}
    drifted = {**base, "drift": 0.5}

    assert synthetic_fingerprint(base) == synthetic_fingerprint(same)
    pd.testing.assert_frame_equal(rows(base), rows(same))
    for changed in (other_seed, drifted):
        assert synthetic_fingerprint(changed) != synthetic_fingerprint(base)
        assert not rows(changed).equals(rows(base))


@pytest.mark.parametrize(
    ("parameters", "expected"),
    [
        ({"rows": "many"}, "parameter rows: expected an integer, got 'many'"),
        ({"seed": 1.5}, "parameter seed: expected an integer, got 1.5"),
        ({"drift": "strong"}, "parameter drift: expected a number, got 'strong'"),
        ({"fraud_rate": True}, "parameter fraud_rate: expected a number, got True"),
        ({"rows": 0}, "rows must be >= 1, got 0"),
        ({"drift": 2}, "drift must be between 0.0 and 1.0, got 2.0"),
    ],
)
def test_bad_synthetic_parameters_are_refused_by_name(
    parameters: dict[str, object], expected: str
) -> None:
    with pytest.raises(FingerprintError) as caught:
        synthetic_fingerprint(parameters)

    assert expected in str(caught.value)


def test_a_missing_or_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(FingerprintError, match=f"no data file at {tmp_path / 'absent.csv'}"):
        file_fingerprint(tmp_path / "absent.csv")
    with pytest.raises(FingerprintError, match="is not a regular file"):
        file_fingerprint(tmp_path)


def test_the_command_prints_the_fingerprint_alone(tmp_path: Path) -> None:
    data = tmp_path / "landed.parquet"
    data.write_bytes(b"PAR1 not really parquet, the bytes are what count")

    from_file = runner.invoke(app, ["fingerprint", str(data)])
    synthetic = runner.invoke(app, ["fingerprint", "-p", "seed=20261102", "-p", "epochs=3"])

    assert from_file.exit_code == 0, from_file.output
    assert from_file.output == file_fingerprint(data) + "\n"
    assert synthetic.exit_code == 0, synthetic.output
    assert synthetic.output == synthetic_fingerprint({"seed": 20261102}) + "\n"


def test_the_command_exits_2_naming_the_problem(tmp_path: Path) -> None:
    bad_value = runner.invoke(app, ["fingerprint", "-p", "rows=lots"])
    no_file = runner.invoke(app, ["fingerprint", str(tmp_path / "absent.csv")])
    not_a_pair = runner.invoke(app, ["fingerprint", "-p", "rows"])

    assert bad_value.exit_code == 2 and "parameter rows" in bad_value.output
    assert no_file.exit_code == 2 and "absent.csv" in no_file.output
    assert not_a_pair.exit_code == 2 and "NAME=VALUE" in not_a_pair.output
