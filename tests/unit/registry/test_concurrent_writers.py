"""Registry rules that hold without a shared lock: first champion, challenger, duplicates, and
the canary's idempotent alias moves, in a real SQLite MLflow registry.

Where a test needs another host to act at a precise moment (between a look-up and a write),
it runs that host's real registration at that moment; everything else is the production code.
tests/integration/test_registry_shared_server.py races real processes against a real
tracking server.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from kaizen.platform.settings import Settings
from kaizen.registry import (
    ModelRegistry,
    ModelVersionNotFoundError,
    PipelineRunTracker,
    register_challenger,
)


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


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    uri = settings.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _state(registry: ModelRegistry) -> list[tuple[int, tuple[str, ...], dict[str, str]]]:
    """Every version with its aliases and tags: what a user could notice changing."""
    return [(info.version, info.aliases, info.tags) for info in registry.versions()]


@pytest.fixture
def champion_and_challenger(
    tmp_path: Path, model_export: Path, other_model_export: Path, settings: Settings
) -> tuple[int, int]:
    first = register_challenger(
        model_export, run_id=_round(tmp_path, "run-1", settings), settings=settings
    )
    second = register_challenger(
        other_model_export, run_id=_round(tmp_path, "run-2", settings), settings=settings
    )
    return first.version, second.version


def test_the_same_model_registered_for_the_same_run_by_two_hosts_at_once_is_one_version(
    tmp_path: Path, model_export: Path, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = _round(tmp_path, "run-1", settings)
    find = ModelRegistry._find_registered
    other_host: list[Any] = []

    def looked_before_the_other_host_registered(self: ModelRegistry, *args: Any) -> Any:
        if other_host:
            return find(self, *args)
        # The other host's registration runs to its end between our look-up and our
        # create: our look-up found nothing, as it would have a moment earlier.
        other_host.append(None)
        other_host[0] = register_challenger(model_export, run_id=run_id, settings=settings)
        return None

    monkeypatch.setattr(ModelRegistry, "_find_registered", looked_before_the_other_host_registered)

    ours = register_challenger(model_export, run_id=run_id, settings=settings)

    registry = ModelRegistry(settings)
    assert (other_host[0].version, ours.version, ours.existing) == (1, 1, True)
    assert [info.version for info in registry.versions()] == [1]
    assert registry.alias_versions() == {"champion": 1, "challenger": 1}
    # The withdrawn duplicate is gone from the registry, not merely unaliased.
    with pytest.raises(ModelVersionNotFoundError, match="has no version 2; versions: \\[1\\]"):
        registry.get(2)


def test_an_interrupted_first_registration_stays_the_first_champion(
    tmp_path: Path, model_export: Path, other_model_export: Path, settings: Settings
) -> None:
    first = register_challenger(
        model_export, run_id=_round(tmp_path, "run-1", settings), settings=settings
    )
    client = _client(settings)
    # What a host killed between creating version 1 and setting its aliases leaves.
    for alias in ("champion", "challenger"):
        client.delete_registered_model_alias("fraud-detector", alias)
    for tag in ("kaizen.promoted_at", "kaizen.promoted_by"):
        client.delete_model_version_tag("fraud-detector", "1", tag)

    # Another pipeline run registers next: the lowest version is the first champion, not
    # whichever registration happened to set the alias.
    second = register_challenger(
        other_model_export, run_id=_round(tmp_path, "run-2", settings), settings=settings
    )

    registry = ModelRegistry(settings)
    assert registry.alias_versions() == {"champion": first.version, "challenger": second.version}
    assert registry.get(first.version).tags["kaizen.promoted_by"] == "first version"


def test_a_stale_challenger_alias_from_a_slower_host_is_corrected_by_the_next_write(
    tmp_path: Path,
    model_export: Path,
    champion_and_challenger: tuple[int, int],
    settings: Settings,
) -> None:
    first, second = champion_and_challenger
    third = register_challenger(
        model_export, run_id=_round(tmp_path, "run-3", settings), settings=settings
    )
    # A host that registered version 2 sets its alias late, after version 3's registration.
    _client(settings).set_registered_model_alias("fraud-detector", "challenger", str(second))

    # The step that registered version 3 is retried (or any other registration lands).
    again = register_challenger(
        model_export, run_id=_round(tmp_path, "run-3", settings), settings=settings
    )

    assert (again.version, again.existing) == (third.version, True)
    assert ModelRegistry(settings).alias_versions() == {
        "champion": first,
        "challenger": third.version,
    }


def test_a_recorded_promotion_applied_by_two_replicas_moves_the_aliases_once(
    champion_and_challenger: tuple[int, int], settings: Settings
) -> None:
    champion, challenger = champion_and_challenger
    registry = ModelRegistry(settings)

    first = registry.apply_canary_decision(
        challenger, "promote", "passed", judged_against=champion, actor="canary"
    )
    after_first = _state(registry)
    second = ModelRegistry(settings).apply_canary_decision(
        challenger, "promote", "passed", judged_against=champion, actor="canary"
    )

    assert (first, second) == ("applied", "already applied")
    assert _state(registry) == after_first
    assert registry.alias_versions() == {"champion": challenger, "previous-champion": champion}
    assert registry.get(challenger).tags["kaizen.promoted_by"] == "canary"


def test_a_recorded_rollback_applied_by_two_replicas_rejects_once(
    champion_and_challenger: tuple[int, int], settings: Settings
) -> None:
    champion, challenger = champion_and_challenger
    registry = ModelRegistry(settings)

    first = registry.apply_canary_decision(
        challenger, "rollback", "too slow", judged_against=champion, actor="canary"
    )
    after_first = _state(registry)
    second = ModelRegistry(settings).apply_canary_decision(
        challenger, "rollback", "too slow again", judged_against=champion, actor="canary"
    )

    assert (first, second) == ("applied", "already applied")
    assert _state(registry) == after_first
    assert registry.alias_versions() == {"champion": champion}
    assert registry.get(challenger).tags["kaizen.rejected_reason"] == "too slow"


@pytest.mark.parametrize("action", ["promote", "rollback"])
def test_a_decision_about_a_challenger_that_was_replaced_changes_nothing(
    tmp_path: Path,
    model_export: Path,
    champion_and_challenger: tuple[int, int],
    settings: Settings,
    action: str,
) -> None:
    champion, judged = champion_and_challenger
    newer = register_challenger(
        model_export, run_id=_round(tmp_path, "run-3", settings), settings=settings
    )
    registry = ModelRegistry(settings)
    before = _state(registry)

    outcome = registry.apply_canary_decision(
        judged, action, "judged", judged_against=champion, actor="canary"
    )

    assert outcome == "superseded"
    assert _state(registry) == before
    assert registry.alias_versions() == {"champion": champion, "challenger": newer.version}


def test_a_promotion_judged_against_a_champion_that_was_replaced_changes_nothing(
    champion_and_challenger: tuple[int, int], settings: Settings
) -> None:
    champion, challenger = champion_and_challenger
    registry = ModelRegistry(settings)
    # Version 2 was judged against a champion that is no longer the one serving.
    outcome = registry.apply_canary_decision(
        challenger, "promote", "passed", judged_against=champion + 10, actor="canary"
    )

    assert outcome == "superseded"
    assert registry.alias_versions() == {"champion": champion, "challenger": challenger}


def test_an_unknown_canary_action_is_refused_naming_it(
    champion_and_challenger: tuple[int, int], settings: Settings
) -> None:
    champion, challenger = champion_and_challenger

    with pytest.raises(ValueError, match="'promote' or 'rollback', got 'wait'"):
        ModelRegistry(settings).apply_canary_decision(
            challenger,
            "wait",  # type: ignore[arg-type]
            "x",
            judged_against=champion,
            actor="canary",
        )
