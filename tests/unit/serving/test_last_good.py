"""The last-good model copy: what a server falls back to when the champion will not load."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest

from kaizen.serving.last_good import MANIFEST, last_good_root, recall, remember

MODEL = "fraud-detector"
FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """The ``KAIZEN_HOME`` the copies go under (``Settings.home`` in a server)."""
    return tmp_path / "home"


def _files(folder: Path, weights: bytes) -> tuple[Path, dict[str, object]]:
    """A version's files as the registry downloads them, and its version info."""
    import hashlib

    folder.mkdir(parents=True)
    (folder / "model.keras").write_bytes(weights)
    digest = hashlib.sha256(weights).hexdigest()
    (folder / "model.keras.sha256").write_text(f"{digest}  model.keras\n")
    (folder / "features.json").write_text(json.dumps(FEATURES))
    (folder / "metadata.json").write_text(json.dumps({"sha256": digest}))
    return folder, {"name": MODEL, "version": 3, "sha256": digest, "aliases": ["champion"]}


def _contents(folder: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(folder.iterdir()) if path.is_file()}


def test_recall_returns_the_remembered_files_and_version(tmp_path: Path, home: Path) -> None:
    source, info = _files(tmp_path / "v3", b"weights of version 3")

    remember(MODEL, source, info, home=home)
    recalled = recall(MODEL, home=home)

    assert recalled is not None
    folder, version_info = recalled
    assert version_info == info
    copied = _contents(folder)
    assert {name: data for name, data in copied.items() if name != MANIFEST} == _contents(source)
    assert folder.is_relative_to(home / "serving" / "last-good")


def test_a_newer_version_replaces_the_copy_and_leaves_no_old_files(
    tmp_path: Path, home: Path
) -> None:
    old_source, old_info = _files(tmp_path / "v3", b"weights of version 3")
    new_source, new_info = _files(tmp_path / "v4", b"weights of version 4")
    new_info["version"] = 4

    remember(MODEL, old_source, old_info, home=home)
    remember(MODEL, new_source, new_info, home=home)
    recalled = recall(MODEL, home=home)

    assert recalled is not None
    folder, version_info = recalled
    assert version_info["version"] == 4
    assert (folder / "model.keras").read_bytes() == b"weights of version 4"
    copies = list((last_good_root(home) / ".copies" / MODEL).iterdir())
    assert copies == [folder]


def test_remembering_the_same_version_again_rewrites_nothing(tmp_path: Path, home: Path) -> None:
    source, info = _files(tmp_path / "v3", b"weights of version 3")
    remember(MODEL, source, info, home=home)
    first = recall(MODEL, home=home)
    assert first is not None
    saved_at = json.loads((first[0] / MANIFEST).read_text())["saved_at"]

    remember(MODEL, source, info, home=home)
    second = recall(MODEL, home=home)

    assert second is not None
    assert second[0] == first[0]
    assert json.loads((second[0] / MANIFEST).read_text())["saved_at"] == saved_at


def test_a_tampered_copy_is_refused_with_the_reason_logged(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, home: Path
) -> None:
    source, info = _files(tmp_path / "v3", b"weights of version 3")
    remember(MODEL, source, info, home=home)
    recalled = recall(MODEL, home=home)
    assert recalled is not None
    (recalled[0] / "model.keras").write_bytes(b"weights someone swapped in")

    with caplog.at_level(logging.WARNING, logger="kaizen.serving.last_good"):
        assert recall(MODEL, home=home) is None

    assert "model.keras" in caplog.text
    assert "modified after it was saved" in caplog.text


def test_a_reordered_feature_list_is_tampering_too(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, home: Path
) -> None:
    source, info = _files(tmp_path / "v3", b"weights of version 3")
    remember(MODEL, source, info, home=home)
    recalled = recall(MODEL, home=home)
    assert recalled is not None
    (recalled[0] / "features.json").write_text(json.dumps(list(reversed(FEATURES))))

    with caplog.at_level(logging.WARNING, logger="kaizen.serving.last_good"):
        assert recall(MODEL, home=home) is None

    assert "features.json" in caplog.text


@pytest.mark.parametrize("damage", ["file removed", "manifest removed", "manifest garbled"])
def test_a_partial_copy_is_refused(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: str, home: Path
) -> None:
    source, info = _files(tmp_path / "v3", b"weights of version 3")
    remember(MODEL, source, info, home=home)
    recalled = recall(MODEL, home=home)
    assert recalled is not None
    folder = recalled[0]
    if damage == "file removed":
        (folder / "metadata.json").unlink()
    elif damage == "manifest removed":
        (folder / MANIFEST).unlink()
    else:
        (folder / MANIFEST).write_text('{"files": ')

    with caplog.at_level(logging.WARNING, logger="kaizen.serving.last_good"):
        assert recall(MODEL, home=home) is None

    expected = {
        "file removed": "metadata.json is missing",
        "manifest removed": "never completed",
        "manifest garbled": "unreadable",
    }[damage]
    assert expected in caplog.text


def test_no_copy_at_all_is_none_with_a_reason(caplog: pytest.LogCaptureFixture, home: Path) -> None:
    with caplog.at_level(logging.WARNING, logger="kaizen.serving.last_good"):
        assert recall(MODEL, home=home) is None

    assert f"no last-good copy of {MODEL}" in caplog.text


def test_a_crashed_writer_leaves_the_previous_copy_in_place(tmp_path: Path, home: Path) -> None:
    source, info = _files(tmp_path / "v3", b"weights of version 3")
    remember(MODEL, source, info, home=home)
    # What a writer killed mid-copy leaves behind: a staging folder with some files and
    # no manifest, never linked.
    staging = last_good_root(home) / ".copies" / MODEL / "copy-interrupted"
    staging.mkdir()
    (staging / "model.keras").write_bytes(b"half of version 4")

    recalled = recall(MODEL, home=home)
    assert recalled is not None
    assert (recalled[0] / "model.keras").read_bytes() == b"weights of version 3"

    newer, newer_info = _files(tmp_path / "v4", b"weights of version 4")
    remember(MODEL, newer, newer_info, home=home)
    assert not staging.exists()


def test_files_that_do_not_match_the_version_are_not_remembered(tmp_path: Path, home: Path) -> None:
    good, good_info = _files(tmp_path / "v3", b"weights of version 3")
    remember(MODEL, good, good_info, home=home)
    other, other_info = _files(tmp_path / "v4", b"weights of version 4")
    other_info["sha256"] = good_info["sha256"]

    with pytest.raises(ValueError, match=r"has sha256 .* but the version records"):
        remember(MODEL, other, other_info, home=home)

    recalled = recall(MODEL, home=home)
    assert recalled is not None
    assert (recalled[0] / "model.keras").read_bytes() == b"weights of version 3"


@pytest.mark.parametrize("name", ["", "..", ".hidden", "a/b", "../escape"])
def test_a_model_name_that_is_not_a_folder_name_is_refused(
    tmp_path: Path, name: str, home: Path
) -> None:
    source, info = _files(tmp_path / "v3", b"weights")

    with pytest.raises(ValueError, match="cannot name a cache folder"):
        remember(name, source, info, home=home)
    with pytest.raises(ValueError, match="cannot name a cache folder"):
        recall(name, home=home)


def test_an_empty_folder_is_not_a_model(tmp_path: Path, home: Path) -> None:
    (tmp_path / "empty").mkdir()

    with pytest.raises(ValueError, match="holds no model files"):
        remember(MODEL, tmp_path / "empty", {"version": 1}, home=home)


def test_the_cache_swap_is_a_symlink_switch(tmp_path: Path, home: Path) -> None:
    source, info = _files(tmp_path / "v3", b"weights of version 3")

    link = remember(MODEL, source, info, home=home)

    # Readers resolve one link: they see the old copy or the new one, never a mix.
    assert link.is_symlink()
    assert not os.readlink(link).startswith("/")
