"""Withdrawing a challenger after a failed canary, in a real SQLite MLflow registry."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from kaizen.platform.settings import Settings
from kaizen.registry import (
    ModelRegistry,
    ModelVersionNotFoundError,
    PipelineRunTracker,
    RegistryError,
    challenger,
    champion,
    register_challenger,
)
from kaizen.registry.models import reject_challenger


def _round(tmp_path: Path, pipeline_run_id: str, settings: Settings) -> str:
    tracker = PipelineRunTracker(pipeline_run_id, settings=settings)
    data = tmp_path / f"{pipeline_run_id}.parquet"
    pd.DataFrame({"amount": [1.0, float(len(pipeline_run_id))]}).to_parquet(data)
    tracker.log_data(
        manifest={"feature_service": "fraud_model_v1", "feature_views": []},
        training_data=data,
        git_commit="abc123",
    )
    return tracker.round_run_id(0)


@pytest.fixture
def champion_and_challenger(
    tmp_path: Path, model_export: Path, other_model_export: Path, settings: Settings
) -> tuple[int, int]:
    first = register_challenger(
        model_export, run_id=_round(tmp_path, "run-1", settings=settings), settings=settings
    )
    second = register_challenger(
        other_model_export, run_id=_round(tmp_path, "run-2", settings=settings), settings=settings
    )
    return first.version, second.version


def test_rejecting_the_challenger_clears_its_alias_and_records_why_when_and_who(
    champion_and_challenger: tuple[int, int],
    settings: Settings,
) -> None:
    champion_version, challenger_version = champion_and_challenger

    info = reject_challenger(
        challenger_version,
        "error rate 100.00% (10 of 10) vs 0.00%",
        actor="canary",
        settings=settings,
    )

    assert info.version == challenger_version
    assert "challenger" not in info.aliases
    assert challenger(settings) is None
    assert champion(settings).version == champion_version  # type: ignore[union-attr]
    assert info.tags["kaizen.rejected_reason"] == "error rate 100.00% (10 of 10) vs 0.00%"
    assert info.tags["kaizen.rejected_by"] == "canary"
    assert datetime.fromisoformat(info.tags["kaizen.rejected_at"]).tzinfo is not None
    # The version stays registered (its lineage remains readable), only the alias went.
    assert [v.version for v in ModelRegistry(settings).versions()] == [1, 2]
    assert ModelRegistry(settings).get(challenger_version).tags["kaizen.rejected_by"] == "canary"


def test_the_champion_cannot_be_rejected(
    champion_and_challenger: tuple[int, int], settings: Settings
) -> None:
    champion_version, challenger_version = champion_and_challenger

    with pytest.raises(RegistryError, match="it is the champion"):
        ModelRegistry(settings).reject_challenger(champion_version, "too slow", actor="canary")

    assert challenger(settings).version == challenger_version  # type: ignore[union-attr]
    assert "kaizen.rejected_reason" not in ModelRegistry(settings).get(champion_version).tags


def test_the_first_version_is_champion_and_challenger_and_is_not_rejected(
    tmp_path: Path, model_export: Path, settings: Settings
) -> None:
    only = register_challenger(
        model_export, run_id=_round(tmp_path, "run-1", settings=settings), settings=settings
    )

    with pytest.raises(RegistryError, match="it is the champion"):
        reject_challenger(only.version, "bad", actor="canary", settings=settings)

    assert challenger(settings).version == only.version  # type: ignore[union-attr]


def test_a_version_that_is_no_longer_challenger_is_refused_naming_the_current_one(
    tmp_path: Path,
    model_export: Path,
    other_model_export: Path,
    champion_and_challenger: tuple[int, int],
    settings: Settings,
) -> None:
    _, judged = champion_and_challenger
    # A newer challenger arrived while the canary judged the old one.
    newer = register_challenger(
        model_export, run_id=_round(tmp_path, "run-3", settings=settings), settings=settings
    )

    with pytest.raises(RegistryError, match=f"the challenger is version {newer.version}"):
        reject_challenger(judged, "too slow", actor="canary", settings=settings)

    assert challenger(settings).version == newer.version  # type: ignore[union-attr]
    assert "kaizen.rejected_reason" not in ModelRegistry(settings).get(judged).tags


def test_rejecting_twice_says_there_is_no_challenger(
    champion_and_challenger: tuple[int, int],
    settings: Settings,
) -> None:
    _, challenger_version = champion_and_challenger
    reject_challenger(challenger_version, "too slow", actor="canary", settings=settings)

    with pytest.raises(RegistryError, match="there is no challenger"):
        reject_challenger(challenger_version, "too slow again", actor="canary", settings=settings)

    tags = ModelRegistry(settings).get(challenger_version).tags
    assert tags["kaizen.rejected_reason"] == "too slow"


def test_an_unknown_version_or_an_empty_reason_is_refused(
    champion_and_challenger: tuple[int, int],
    settings: Settings,
) -> None:
    _, challenger_version = champion_and_challenger

    with pytest.raises(ModelVersionNotFoundError, match="no version 9"):
        reject_challenger(9, "bad", actor="canary", settings=settings)
    with pytest.raises(ValueError, match="needs a reason"):
        reject_challenger(challenger_version, "  ", actor="canary", settings=settings)

    assert challenger(settings).version == challenger_version  # type: ignore[union-attr]


def test_status_shows_the_last_rejected_challenger_and_why(
    champion_and_challenger: tuple[int, int],
    settings: Settings,
) -> None:
    from kaizen.registry import status

    _, challenger_version = champion_and_challenger
    assert status(settings=settings)["last_rejected"] is None

    reject_challenger(
        challenger_version, "p95 41.0 ms vs champion 3.0 ms", actor="canary", settings=settings
    )

    rejected = status(settings=settings)["last_rejected"]
    assert rejected["version"] == challenger_version
    assert rejected["reason"] == "p95 41.0 ms vs champion 3.0 ms"
    assert rejected["rejected_by"] == "canary"
    assert status(settings=settings)["challenger"] is None
