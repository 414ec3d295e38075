import time
from pathlib import Path

import pytest

from kaizen.platform.storage import sha256_file
from kaizen.training.digest import model_content_digest


def _save_twice(tmp_path: Path) -> tuple[Path, Path, Path]:
    from kaizen.training.model import import_keras

    keras = import_keras()
    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
    first, second, changed = tmp_path / "a.keras", tmp_path / "b.keras", tmp_path / "c.keras"
    model.save(first)
    time.sleep(1.1)  # Keras stamps the save time in seconds
    model.save(second)
    model.layers[0].kernel.assign(model.layers[0].kernel + 1.0)
    model.save(changed)
    return first, second, changed


def test_same_model_saved_twice_has_one_identity(tmp_path: Path) -> None:
    first, second, changed = _save_twice(tmp_path)
    assert sha256_file(first) != sha256_file(second)  # why the digest exists
    assert model_content_digest(first) == model_content_digest(second)
    assert model_content_digest(changed) != model_content_digest(first)


def test_non_archive_is_refused(tmp_path: Path) -> None:
    bogus = tmp_path / "model.keras"
    bogus.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match=r"model.keras is not a readable .keras archive"):
        model_content_digest(bogus)


def test_object_ids_in_the_config_do_not_change_the_identity(tmp_path: Path) -> None:
    import json
    import zipfile

    first, _, _ = _save_twice(tmp_path)
    config = {
        "layers": [
            {"name": "a", "shared_object_id": 139942801391440},
            {"name": "b", "shared_object_id": 139942801391440},
        ]
    }
    renumbered = json.loads(json.dumps(config).replace("139942801391440", "140452828557904"))
    different = {
        "layers": [{"name": "a", "shared_object_id": 1}, {"name": "b", "shared_object_id": 2}]
    }

    def rewrite(target: Path, new_config: dict[str, object]) -> Path:
        with zipfile.ZipFile(first) as source, zipfile.ZipFile(target, "w") as out:
            for info in source.infolist():
                data = source.read(info)
                out.writestr(
                    info, json.dumps(new_config) if info.filename == "config.json" else data
                )
        return target

    same_a = rewrite(tmp_path / "x.keras", config)
    same_b = rewrite(tmp_path / "y.keras", renumbered)
    other = rewrite(tmp_path / "z.keras", different)
    assert model_content_digest(same_a) == model_content_digest(same_b)
    assert model_content_digest(other) != model_content_digest(same_a)  # sharing structure matters
