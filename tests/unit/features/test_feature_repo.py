"""The real feature_repo/ loads and applies (CLI and Python), and bad repos fail clearly."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from kaizen.features import (
    FeatureRepoError,
    apply_feature_repo,
    compute_feature_tables,
    feature_names,
    load_feature_store,
)

FEAST = Path(sys.executable).with_name("feast")


def repo_files(repo: Path) -> set[Path]:
    return {path.relative_to(repo) for path in repo.rglob("*")}


def copy_repo(repo_root: Path, destination: Path) -> Path:
    return Path(shutil.copytree(repo_root / "feature_repo", destination / "feature_repo"))


def test_feast_cli_applies_the_real_repo_into_kaizen_home(
    repo_root: Path, kaizen_home: Path
) -> None:
    repo = repo_root / "feature_repo"
    before = repo_files(repo)
    # The registry's directory must exist; feast creates the file, not its parents.
    (kaizen_home / "feast").mkdir(parents=True)
    env = {**os.environ, "KAIZEN_HOME": str(kaizen_home)}
    env.pop("KAIZEN_FEAST_DATA_URI", None)
    completed = subprocess.run(
        [str(FEAST), "-c", str(repo), "apply"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Created feature service fraud_model_v1" in completed.stdout
    assert repo_files(repo) == before, "feast apply wrote into the feature repo"

    store = load_feature_store(repo, kaizen_home)
    assert (kaizen_home / "feast" / "registry.db").is_file()
    assert sorted(view.name for view in store.list_feature_views()) == [
        "customer_stats_fv",
        "merchant_stats_fv",
    ]
    assert [view.name for view in store.list_on_demand_feature_views()] == [
        "transaction_context_odfv"
    ]
    assert sorted(entity.name for entity in store.list_entities()) == ["customer", "merchant"]
    sources = {view.name: view.batch_source.path for view in store.list_feature_views()}
    data = kaizen_home / "feast" / "data" / "current"  # before any build: the link's own path
    assert sources == {
        "customer_stats_fv": (data / "customer_stats.parquet").as_posix(),
        "merchant_stats_fv": (data / "merchant_stats.parquet").as_posix(),
    }


def test_feast_cli_without_kaizen_home_says_what_to_set(repo_root: Path, tmp_path: Path) -> None:
    repo = copy_repo(repo_root, tmp_path)
    before = repo_files(repo)
    env = {key: value for key, value in os.environ.items() if key != "KAIZEN_HOME"}
    env.pop("KAIZEN_FEAST_DATA_URI", None)
    completed = subprocess.run(
        [str(FEAST), "-c", str(repo), "apply"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode != 0
    assert "neither KAIZEN_FEAST_DATA_URI nor KAIZEN_HOME is set" in completed.stderr
    assert repo_files(repo) == before


def test_python_apply_is_idempotent(repo_root: Path, kaizen_home: Path) -> None:
    from kaizen.features.store import is_applied, is_feature_repo

    assert is_feature_repo(repo_root / "feature_repo") and not is_feature_repo(repo_root)
    assert not is_applied(kaizen_home)  # what `kaizen serve` checks before entity lookups
    first = apply_feature_repo(repo_root / "feature_repo", kaizen_home)
    assert is_applied(kaizen_home)
    specs = {view.name: view.to_proto().spec for view in first.list_feature_views()}
    updated = {view.name: view.last_updated_timestamp for view in first.list_feature_views()}
    service = first.get_feature_service("fraud_model_v1").to_proto().spec

    second = apply_feature_repo(repo_root / "feature_repo", kaizen_home)
    assert {view.name: view.to_proto().spec for view in second.list_feature_views()} == specs
    assert {view.name: view.last_updated_timestamp for view in second.list_feature_views()} == (
        updated
    )
    assert second.get_feature_service("fraud_model_v1").to_proto().spec == service
    assert feature_names(second) == feature_names(first)


def test_view_schemas_match_the_computed_tables(repo_root: Path, kaizen_home: Path) -> None:
    store = apply_feature_repo(repo_root / "feature_repo", kaizen_home)
    stamp = pd.Timestamp("2026-01-01 10:00", tz="UTC")
    tables = compute_feature_tables(
        pd.DataFrame(
            {
                "transaction_id": ["T1"],
                "customer_id": ["C1"],
                "merchant_id": ["M1"],
                "amount": [12.0],
                "event_timestamp": [stamp],
                "is_fraud": [0],
                "label_timestamp": [stamp],
            }
        )
    )
    for view, table in (
        ("customer_stats_fv", tables.customer_stats),
        ("merchant_stats_fv", tables.merchant_stats),
    ):
        feature_view = store.get_feature_view(view)
        key = feature_view.entity_columns[0].name
        assert [key, feature_view.batch_source.timestamp_field] == list(table.columns[:2])
        assert [feature.name for feature in feature_view.features] == list(table.columns[2:])


def test_a_missing_repo_or_config_is_named(tmp_path: Path, kaizen_home: Path) -> None:
    with pytest.raises(FeatureRepoError, match=f"feature repo {tmp_path / 'nowhere'} does not"):
        apply_feature_repo(tmp_path / "nowhere", kaizen_home)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FeatureRepoError, match=r"has no feature_store\.yaml"):
        apply_feature_repo(tmp_path / "empty", kaizen_home)


def test_broken_definitions_are_reported_with_the_error(
    repo_root: Path, tmp_path: Path, kaizen_home: Path
) -> None:
    repo = copy_repo(repo_root, tmp_path)
    views = repo / "feature_views.py"
    views.write_text(views.read_text().replace("entities=[merchant]", "entities=[shop]"))
    with pytest.raises(
        FeatureRepoError,
        match=r"feature repo .*feature_repo: loading the definitions failed: NameError: .*shop",
    ):
        apply_feature_repo(repo, kaizen_home)


def test_an_unset_variable_in_the_config_is_named(
    repo_root: Path, tmp_path: Path, kaizen_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("KAIZEN_ONLINE_DIR", raising=False)
    repo = copy_repo(repo_root, tmp_path)
    config = repo / "feature_store.yaml"
    config.write_text(
        config.read_text().replace(
            "${KAIZEN_HOME}/feast/online_store.db", "${KAIZEN_ONLINE_DIR}/online.db"
        )
    )
    with pytest.raises(FeatureRepoError, match=r"\['KAIZEN_ONLINE_DIR'\], which are not set"):
        apply_feature_repo(repo, kaizen_home)
    assert not list(repo.rglob("*KAIZEN_ONLINE_DIR*"))


def test_an_invalid_config_is_named(repo_root: Path, tmp_path: Path, kaizen_home: Path) -> None:
    repo = copy_repo(repo_root, tmp_path)
    config = repo / "feature_store.yaml"
    config.write_text(config.read_text().replace("type: sqlite", "type: no-such-store"))
    with pytest.raises(FeatureRepoError, match=r"feature_store.yaml is invalid"):
        apply_feature_repo(repo, kaizen_home)


def test_cluster_config_renders_from_variables_without_secrets(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast.repo_config import RepoConfig

    path = repo_root / "feature_repo" / "envs" / "cluster" / "feature_store.yaml"
    text = path.read_text()
    values = {
        "KAIZEN_FEAST_REGISTRY_URI": "s3://kaizen/feast/registry.db",
        "KAIZEN_REDIS_CONNECTION": "redis.kaizen.svc:6379",
    }
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    rendered = yaml.safe_load(os.path.expandvars(text))
    assert rendered["project"] == "kaizen"
    assert rendered["registry"]["path"] == values["KAIZEN_FEAST_REGISTRY_URI"]
    assert rendered["online_store"] == {
        "type": "redis",
        "connection_string": values["KAIZEN_REDIS_CONNECTION"],
    }
    # RepoConfig imports the Redis store's client to validate that section, and the redis
    # package belongs to the cluster image only; everything else is validated here.
    config = RepoConfig(**{**rendered, "online_store": {"type": "sqlite"}})
    assert config.registry.path == values["KAIZEN_FEAST_REGISTRY_URI"]
    assert config.offline_store.type == "spark"  # more in test_cluster_config.py
    unrendered = yaml.safe_load(text)
    assert unrendered["registry"]["path"] == "${KAIZEN_FEAST_REGISTRY_URI}"
    lowered = text.lower()
    assert "password=" not in lowered and "s3a.secret.key" not in lowered
