"""Loading a registered version: verified sha256, Keras safe_mode, clear refusals."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import numpy as np
import pytest

from kaizen.platform.settings import Settings
from kaizen.platform.storage import sha256_file
from kaizen.registry import (
    ModelIntegrityError,
    ModelVersionInfo,
    PipelineRunTracker,
    download_model_version,
    load_model_version,
    register_challenger,
)
from kaizen.training.train import load_model


def _client(settings: Settings) -> Any:
    from mlflow import MlflowClient

    uri = settings.tracking_uri
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _register(
    export: Path, pipeline_run_id: str = "run-1", *, settings: Settings
) -> ModelVersionInfo:
    return register_challenger(
        export,
        run_id=PipelineRunTracker(pipeline_run_id, settings=settings).round_run_id(0),
        settings=settings,
    )


def _stored(info: ModelVersionInfo) -> Path:
    return Path(unquote(urlparse(info.source).path))


def _replace_consistently(info: ModelVersionInfo, data: bytes, settings: Settings) -> None:
    """Swap the stored model.keras and rewrite its sidecar and registry tags to match.

    This is a registry written by a tool that skipped Kaizen's checks: every digest agrees,
    so only the format checks and Keras safe_mode stand between the file and the process.
    """
    folder = _stored(info)
    (folder / "model.keras").write_bytes(data)
    digest = sha256_file(folder / "model.keras")
    (folder / "model.keras.sha256").write_text(f"{digest}  model.keras\n")
    files = json.loads(info.tags["kaizen.files_sha256"])
    files.update(
        {name: sha256_file(folder / name) for name in ("model.keras", "model.keras.sha256")}
    )
    client = _client(settings)
    for key, value in {
        "kaizen.sha256": digest,
        "kaizen.size_bytes": str(len(data)),
        "kaizen.files_sha256": json.dumps(files),
    }.items():
        client.set_model_version_tag(info.name, str(info.version), key, value)


def test_the_champion_loads_and_scores_like_the_export(
    model_export: Path, settings: Settings
) -> None:
    _register(model_export, settings=settings)

    model, info = load_model_version("champion", settings)

    assert info.version == 1 and "champion" in info.aliases
    rows = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    expected = load_model(model_export)(rows, training=False)
    assert np.asarray(model(rows, training=False)) == pytest.approx(np.asarray(expected))


def test_download_gives_the_verified_files(
    model_export: Path, tmp_path: Path, settings: Settings
) -> None:
    _register(model_export, settings=settings)

    folder, info = download_model_version(1, tmp_path / "champion", settings)

    assert folder == tmp_path / "champion"
    assert sorted(path.name for path in folder.iterdir()) == sorted(
        ["model.keras", "model.keras.sha256", "features.json", "metadata.json"]
    )
    assert sha256_file(folder / "model.keras") == info.sha256
    assert json.loads((folder / "features.json").read_text()) == json.loads(
        (model_export / "features.json").read_text()
    )


def test_a_file_with_changed_bytes_is_refused(model_export: Path, settings: Settings) -> None:
    info = _register(model_export, settings=settings)
    path = _stored(info) / "model.keras"
    data = bytearray(path.read_bytes())
    data[100] ^= 0x01
    path.write_bytes(bytes(data))

    with pytest.raises(
        ModelIntegrityError,
        match=r"refusing to load fraud-detector version 1 \(champion, challenger\): "
        r"model.keras sha256 mismatch: registered [0-9a-f]{64}, file has",
    ):
        load_model_version(1, settings)


def test_a_truncated_file_is_refused(model_export: Path, settings: Settings) -> None:
    info = _register(model_export, settings=settings)
    path = _stored(info) / "model.keras"
    size = path.stat().st_size
    path.write_bytes(path.read_bytes()[: size // 2])

    with pytest.raises(
        ModelIntegrityError,
        match=f"version 1 .*model.keras is truncated: {size // 2} bytes, registered with {size}",
    ):
        load_model_version("champion", settings)


def test_a_sidecar_that_disagrees_with_the_registry_is_refused(
    model_export: Path, settings: Settings
) -> None:
    info = _register(model_export, settings=settings)
    (_stored(info) / "model.keras.sha256").write_text("f" * 64 + "  model.keras\n")

    with pytest.raises(
        ModelIntegrityError, match=r"model\.keras.sha256 says ffff.* but the registry"
    ):
        load_model_version(1, settings)


def test_a_reordered_feature_list_is_refused(
    model_export: Path, tmp_path: Path, settings: Settings
) -> None:
    info = _register(model_export, settings=settings)
    features = _stored(info) / "features.json"
    features.write_text(json.dumps(list(reversed(json.loads(features.read_text())))))

    with pytest.raises(ModelIntegrityError, match=r"version 1 .*features\.json differs"):
        download_model_version(1, tmp_path / "download", settings)
    assert not (tmp_path / "download" / "model.keras").exists()


def test_a_pickle_renamed_keras_is_refused_even_with_matching_digests(
    model_export: Path, settings: Settings
) -> None:
    info = _register(model_export, settings=settings)
    _replace_consistently(info, pickle.dumps({"weights": [1.0, 2.0]}), settings)

    with pytest.raises(ModelIntegrityError, match=r"version 1 .*not a Keras archive"):
        load_model_version(1, settings)


def test_a_legacy_h5_renamed_keras_is_refused(
    model_export: Path, tmp_path: Path, settings: Settings
) -> None:
    import keras

    legacy = tmp_path / "legacy.h5"
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.save(legacy)
    assert legacy.read_bytes()[:4] == b"\x89HDF"
    info = _register(model_export, settings=settings)
    _replace_consistently(info, legacy.read_bytes(), settings)

    with pytest.raises(ModelIntegrityError, match=r"version 1 .*not a Keras archive"):
        load_model_version(1, settings)


def test_a_keras_archive_with_a_lambda_layer_is_refused_by_safe_mode(
    model_export: Path, tmp_path: Path, settings: Settings
) -> None:
    import keras

    export = tmp_path / "lambda-export"
    export.mkdir()
    model = keras.Sequential(
        [keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2.0), keras.layers.Dense(1)]
    )
    model.save(export / "model.keras")
    digest = sha256_file(export / "model.keras")
    (export / "model.keras.sha256").write_text(f"{digest}  model.keras\n")
    (export / "features.json").write_text('["a", "b", "c"]')
    (export / "metadata.json").write_text(json.dumps({"sha256": digest}))
    _register(model_export, settings=settings)
    info = _register(export, "run-2", settings=settings)

    with pytest.raises(ModelIntegrityError, match=r"version 2 .*Lambda"):
        load_model_version(info.version, settings)
