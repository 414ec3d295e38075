"""The rehearsal's entry point: its options, its work dir and its summary lines."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from kaizen.rehearsal.__main__ import _parameter
from kaizen.rehearsal.run import WORKDIR_MARK, _empty_workdir, short_image


def test_a_work_dir_the_rehearsal_did_not_make_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="not made by a rehearsal"):
        _empty_workdir(tmp_path)
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_an_earlier_rehearsals_work_dir_is_emptied_and_marked(tmp_path: Path) -> None:
    workdir = tmp_path / "rehearsal"
    _empty_workdir(workdir)  # new
    (workdir / "logs" / "mlflow.log").write_text("stale")
    _empty_workdir(workdir)
    assert sorted(path.name for path in workdir.iterdir()) == [WORKDIR_MARK, "logs"]
    assert list((workdir / "logs").iterdir()) == []


def test_pipeline_parameters_are_json_or_strings() -> None:
    assert _parameter("rows=5000") == ("rows", 5000)
    assert _parameter("source_uri=data/x.csv") == ("source_uri", "data/x.csv")
    with pytest.raises(argparse.ArgumentTypeError, match="NAME=VALUE"):
        _parameter("rows")


def test_a_pinned_image_is_shortened_for_the_table() -> None:
    digest = "sha256:" + "ab" * 32
    assert short_image(f"127.0.0.1:5000/kaizen-component@{digest}") == (
        "127.0.0.1:5000/kaizen-component@sha256:abababababab"
    )
    assert short_image("host: podman push") == "host: podman push"
