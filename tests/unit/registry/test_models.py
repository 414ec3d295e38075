"""Registering versions, champion/challenger aliases, promotion and rollback."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

from kaizen.platform.settings import Settings
from kaizen.platform.storage import sha256_file
from kaizen.registry import (
    ModelIntegrityError,
    ModelRegistry,
    ModelVersionNotFoundError,
    NoPreviousChampionError,
    PipelineRunTracker,
    RegistryError,
    challenger,
    champion,
    previous_champion,
    promote,
    register_challenger,
    rollback,
)
from kaizen.training.digest import model_content_digest
from kaizen.training.train import ModelFileError


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    uri = settings.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _pipeline_round(
    tmp_path: Path, pipeline_run_id: str, roc_auc: float = 0.93, *, settings: Settings
) -> str:
    """A tracked pipeline run up to the gate; returns its round-0 run id."""
    tracker = PipelineRunTracker(pipeline_run_id, settings=settings)
    data = tmp_path / f"{pipeline_run_id}.parquet"
    pd.DataFrame({"amount": [1.0, 2.0, float(len(pipeline_run_id))]}).to_parquet(data)
    tracker.log_data(
        manifest={"feature_service": "fraud_model_v1", "feature_views": ["customer_stats"]},
        training_data=data,
        git_commit="abc123",
    )
    tracker.log_evaluation({"metrics": {"roc_auc": roc_auc, "recall": 0.7}}, round_index=0)
    return tracker.round_run_id(0)


def _store_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def test_the_first_version_is_challenger_and_champion_with_its_lineage_tags(
    tmp_path: Path, model_export: Path, kaizen_home: Path, settings: Settings
) -> None:
    run_id = _pipeline_round(tmp_path, "run-1", settings=settings)

    info = register_challenger(
        model_export, run_id=run_id, tags={"gate": "pass"}, settings=settings
    )

    assert (info.version, info.aliases) == (1, ("champion", "challenger"))
    assert info.sha256 == sha256_file(model_export / "model.keras")
    assert info.content_digest == model_content_digest(model_export / "model.keras")
    assert info.pipeline_run_id == "run-1"
    assert info.metrics == {"test_roc_auc": 0.93, "test_recall": 0.7}
    params = (
        _client(settings).get_run(PipelineRunTracker("run-1", settings=settings).run_id).data.params
    )
    assert info.tags["kaizen.data_fingerprint"] == params["data.fingerprint"]
    assert info.tags["kaizen.feature_service"] == "fraud_model_v1"
    assert info.tags["kaizen.round"] == "0"
    assert info.tags["gate"] == "pass"
    assert info.existing is False
    stored = _store_path(info.source)
    assert stored.is_relative_to(kaizen_home / "objects" / "mlflow")
    assert sorted(p.name for p in stored.iterdir()) == sorted(
        ["model.keras", "model.keras.sha256", "features.json", "metadata.json"]
    )
    parent_tags = (
        _client(settings).get_run(PipelineRunTracker("run-1", settings=settings).run_id).data.tags
    )
    assert parent_tags["kaizen.registered_version"] == "1"


def test_a_later_version_is_challenger_only(
    tmp_path: Path, model_export: Path, other_model_export: Path, settings: Settings
) -> None:
    register_challenger(
        model_export,
        run_id=_pipeline_round(tmp_path, "run-1", settings=settings),
        settings=settings,
    )

    second = register_challenger(
        other_model_export,
        run_id=_pipeline_round(tmp_path, "run-2", settings=settings),
        settings=settings,
    )

    assert (second.version, second.aliases) == (2, ("challenger",))
    assert champion(settings) is not None and champion(settings).version == 1  # type: ignore[union-attr]
    assert challenger(settings).version == 2  # type: ignore[union-attr]
    assert previous_champion(settings) is None


def test_registering_the_same_model_for_the_same_run_twice_returns_the_existing_version(
    tmp_path: Path, model_export: Path, settings: Settings
) -> None:
    run_id = _pipeline_round(tmp_path, "run-1", settings=settings)
    first = register_challenger(model_export, run_id=run_id, settings=settings)

    again = register_challenger(model_export, run_id=run_id, settings=settings)

    assert again.version == first.version and again.existing is True
    assert [info.version for info in ModelRegistry(settings).versions()] == [1]
    # The same model from another pipeline run is another version (other data lineage).
    other = register_challenger(
        model_export,
        run_id=_pipeline_round(tmp_path, "run-2", settings=settings),
        settings=settings,
    )
    assert other.version == 2


def test_a_registration_retried_after_a_crash_before_its_aliases_completes_them(
    tmp_path: Path, model_export: Path, settings: Settings
) -> None:
    run_id = _pipeline_round(tmp_path, "run-1", settings=settings)
    register_challenger(model_export, run_id=run_id, settings=settings)
    client = _client(settings)
    # What a process killed between creating the version and setting its aliases leaves.
    for alias in ("champion", "challenger"):
        client.delete_registered_model_alias("fraud-detector", alias)
    for tag in ("kaizen.promoted_at", "kaizen.promoted_by"):
        client.delete_model_version_tag("fraud-detector", "1", tag)

    again = register_challenger(model_export, run_id=run_id, settings=settings)

    assert (again.version, again.existing) == (1, True)
    assert again.aliases == ("champion", "challenger")
    assert [info.version for info in ModelRegistry(settings).versions()] == [1]


def test_promote_moves_champion_and_records_the_previous_one(
    tmp_path: Path, model_export: Path, other_model_export: Path, settings: Settings
) -> None:
    register_challenger(
        model_export,
        run_id=_pipeline_round(tmp_path, "run-1", settings=settings),
        settings=settings,
    )
    register_challenger(
        other_model_export,
        run_id=_pipeline_round(tmp_path, "run-2", settings=settings),
        settings=settings,
    )

    result = promote("challenger", actor="alice", settings=settings)

    assert (result.champion, result.previous_champion, result.changed) == (2, 1, True)
    registry = ModelRegistry(settings)
    promoted = registry.get(2)
    assert promoted.aliases == ("champion",)  # challenger cleared: it was promoted
    assert promoted.tags["kaizen.promoted_by"] == "alice"
    assert promoted.tags["kaizen.replaced_version"] == "1"
    assert promoted.tags["kaizen.promoted_at"] == result.at
    demoted = registry.get(1)
    assert demoted.aliases == ("previous-champion",)
    assert demoted.tags["kaizen.demoted_by"] == "alice"
    assert challenger(settings) is None

    again = promote(2, actor="bob", settings=settings)
    assert again.changed is False and registry.get(2).tags["kaizen.promoted_by"] == "alice"


def test_rollback_restores_the_previous_champion_and_walks_back_the_history(
    tmp_path: Path, model_export: Path, other_model_export: Path, settings: Settings
) -> None:
    register_challenger(
        model_export,
        run_id=_pipeline_round(tmp_path, "run-1", settings=settings),
        settings=settings,
    )
    register_challenger(
        other_model_export,
        run_id=_pipeline_round(tmp_path, "run-2", settings=settings),
        settings=settings,
    )
    register_challenger(
        model_export,
        run_id=_pipeline_round(tmp_path, "run-3", settings=settings),
        settings=settings,
    )
    promote(2, actor="alice", settings=settings)
    promote(3, actor="alice", settings=settings)

    first = rollback(actor="bob", settings=settings)

    assert (first.champion, first.previous_champion) == (2, 3)
    registry = ModelRegistry(settings)
    assert registry.get(3).tags["kaizen.rolled_back_by"] == "bob"
    assert previous_champion(settings).version == 1  # type: ignore[union-attr]
    second = rollback(actor="bob", settings=settings)
    assert (second.champion, second.previous_champion) == (1, 2)
    assert previous_champion(settings) is None
    with pytest.raises(NoPreviousChampionError, match=r"no previous champion .* is version 1"):
        rollback(settings=settings)
    assert champion(settings).version == 1  # type: ignore[union-attr]


def test_rollback_with_no_history_and_unknown_versions_give_clear_errors(
    tmp_path: Path, model_export: Path, settings: Settings
) -> None:
    assert champion(settings) is None and challenger(settings) is None
    with pytest.raises(ModelVersionNotFoundError, match=r"has no alias 'champion'; versions: none"):
        ModelRegistry(settings).get("champion")
    with pytest.raises(NoPreviousChampionError, match=r"no previous champion"):
        rollback(settings=settings)
    register_challenger(
        model_export,
        run_id=_pipeline_round(tmp_path, "run-1", settings=settings),
        settings=settings,
    )

    with pytest.raises(ModelVersionNotFoundError, match=r"has no version 7; versions: \[1\]"):
        promote(7, settings=settings)


def test_promoting_a_version_whose_file_was_tampered_with_is_refused(
    tmp_path: Path, model_export: Path, other_model_export: Path, settings: Settings
) -> None:
    register_challenger(
        model_export,
        run_id=_pipeline_round(tmp_path, "run-1", settings=settings),
        settings=settings,
    )
    second = register_challenger(
        other_model_export,
        run_id=_pipeline_round(tmp_path, "run-2", settings=settings),
        settings=settings,
    )
    stored = _store_path(second.source) / "model.keras"
    data = bytearray(stored.read_bytes())
    data[len(data) // 2] ^= 0xFF
    stored.write_bytes(bytes(data))

    with pytest.raises(ModelIntegrityError, match=r"version 2 .*sha256 mismatch"):
        promote(2, settings=settings)
    assert champion(settings).version == 1  # type: ignore[union-attr]


def test_a_damaged_or_incomplete_export_is_not_registered(
    tmp_path: Path, model_export: Path, settings: Settings
) -> None:
    run_id = _pipeline_round(tmp_path, "run-1", settings=settings)
    edited = tmp_path / "edited"
    shutil.copytree(model_export, edited)
    (edited / "model.keras.sha256").write_text("0" * 64 + "  model.keras\n")
    incomplete = tmp_path / "incomplete"
    shutil.copytree(model_export, incomplete)
    (incomplete / "metadata.json").unlink()
    foreign = tmp_path / "foreign"
    shutil.copytree(model_export, foreign)
    (foreign / "model.keras").write_bytes(b"\x80\x04\x95 pickled bytes, not a zip archive")
    (foreign / "model.keras.sha256").write_text(
        sha256_file(foreign / "model.keras") + "  model.keras\n"
    )

    with pytest.raises(ModelFileError, match=r"sha256 .* but model\.keras.sha256 says 0000"):
        register_challenger(edited, run_id=run_id, settings=settings)
    with pytest.raises(ModelFileError, match=r"missing metadata\.json"):
        register_challenger(incomplete, run_id=run_id, settings=settings)
    with pytest.raises(ModelFileError, match=f"{foreign}/model.keras is not a readable"):
        register_challenger(foreign, run_id=run_id, settings=settings)
    with pytest.raises(ModelFileError, match="no such model export folder"):
        register_challenger(tmp_path / "nowhere", run_id=run_id, settings=settings)
    with pytest.raises(RegistryError, match=r"no MLflow run 'no-such-run'"):
        register_challenger(model_export, run_id="no-such-run", settings=settings)
    assert ModelRegistry(settings).versions() == []
