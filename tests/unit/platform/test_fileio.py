import json
from pathlib import Path

import pytest

from kaizen.platform.fileio import atomic_path, write_json_atomic, write_text_atomic


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    target = write_text_atomic(tmp_path / "report.html", "good")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("crash mid-write")
    assert target.read_text() == "good"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]


def test_result_is_world_readable_and_folders_are_created(tmp_path: Path) -> None:
    target = write_json_atomic(tmp_path / "a" / "b" / "decision.json", {"passed": True})
    assert json.loads(target.read_text()) == {"passed": True}
    assert target.stat().st_mode & 0o777 == 0o644


def test_suffix_is_kept_for_picky_writers(tmp_path: Path) -> None:
    with atomic_path(tmp_path / "model.keras", suffix=".tmp.keras") as tmp:
        assert tmp.name.endswith(".tmp.keras")
        tmp.write_bytes(b"x")
    assert (tmp_path / "model.keras").read_bytes() == b"x"
