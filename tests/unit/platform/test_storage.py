import multiprocessing
from pathlib import Path

import pytest

from kaizen.platform.storage import (
    KeyExistsError,
    KeyNotFoundError,
    LocalObjectStore,
    new_version,
    open_store,
    sha256_bytes,
    sha256_file,
)


def test_round_trip_and_listing(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    uri = store.put_bytes("models/m/v1/model.keras", b"weights")
    assert uri.startswith("file://")
    store.put_bytes("models/m/v2/model.keras", b"other")
    store.put_bytes("reports/r.html", b"<html/>")
    assert store.get_bytes("models/m/v1/model.keras") == b"weights"
    assert list(store.list("models/")) == ["models/m/v1/model.keras", "models/m/v2/model.keras"]
    assert store.exists("reports/r.html")
    assert not store.exists("reports/missing.html")


def test_versioned_key_is_never_overwritten(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("models/m/v1/model.keras", b"good")
    with pytest.raises(
        KeyExistsError, match=r"refusing to overwrite versioned key 'models/m/v1/model\.keras'"
    ):
        store.put_bytes("models/m/v1/model.keras", b"bad")
    assert store.get_bytes("models/m/v1/model.keras") == b"good"
    # An explicit overwrite (for mutable keys such as pointers) is allowed.
    store.put_bytes("latest.json", b"1", overwrite=True)
    store.put_bytes("latest.json", b"2", overwrite=True)
    assert store.get_bytes("latest.json") == b"2"


def test_missing_key_error_names_key(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    with pytest.raises(KeyNotFoundError, match="no object at key 'nope/x'"):
        store.get_bytes("nope/x")


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "dir/", "a\\b", "./a"])
def test_unsafe_keys_are_refused(tmp_path: Path, key: str) -> None:
    store = LocalObjectStore(tmp_path)
    with pytest.raises(ValueError, match="invalid object key"):
        store.put_bytes(key, b"x")


def test_no_temporary_files_left_behind(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path)
    store.put_bytes("a/b.bin", b"1")
    with pytest.raises(KeyExistsError):
        store.put_bytes("a/b.bin", b"2")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["b.bin"]


def _race(root: str, payload: bytes, results: "multiprocessing.Queue[str]") -> None:
    store = LocalObjectStore(root)
    try:
        store.put_bytes("models/m/v1/model.keras", payload)
        results.put("won")
    except KeyExistsError:
        results.put("refused")


def test_concurrent_writers_of_one_key_exactly_one_wins(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[str] = context.Queue()
    payloads = [bytes([index]) * 1_000_000 for index in range(4)]
    workers = [
        context.Process(target=_race, args=(str(tmp_path), payload, results))
        for payload in payloads
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    outcomes = sorted(results.get(timeout=5) for _ in workers)
    assert outcomes == ["refused", "refused", "refused", "won"]
    stored = LocalObjectStore(tmp_path).get_bytes("models/m/v1/model.keras")
    assert stored in payloads  # one whole payload, never a mix


def test_checksums_and_versions(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc")
    assert sha256_file(path) == sha256_bytes(b"abc")
    assert sha256_bytes(b"abc").startswith("ba7816bf")
    first, second = new_version("ab" * 32), new_version("cd" * 32)
    assert first.endswith("-abababababab") and second.endswith("-cdcdcdcdcdcd")


def test_open_store_uses_the_home_of_the_settings(tmp_path: Path) -> None:
    from kaizen.platform.settings import Settings

    store = open_store(Settings(home=tmp_path / "home", storage_backend="local"))
    store.put_bytes("x/y", b"1")
    assert (tmp_path / "home" / "objects" / "x" / "y").read_bytes() == b"1"
