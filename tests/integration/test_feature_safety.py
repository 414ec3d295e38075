"""A feature build that fails, at any point, leaves what serving reads byte for byte as it was.

What serving reads lives under ``$KAIZEN_HOME/feast``: the registry, the online store and,
through the registry, the live generation's parquet sources. Each test makes a good build
first, then a build that fails in a different place (bad data, a window that cannot train,
broken definitions, an error after materialization, a kill -9 in the middle of
materialization or of the commit) and compares the live files with what they were.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaizen.features import build_features, generations, load_feature_store
from kaizen.platform.settings import Settings

DAY0 = pd.Timestamp("2026-05-01", tz="UTC")
# A generous bound for a child process to reach a point; never a synchronisation sleep.
DEADLINE_S = 300.0


def history(n: int = 240, seed: int = 5, shift_amounts: float = 0.0) -> pd.DataFrame:
    """Eight days of five customers at three merchants; both classes in every 2-day window."""
    rng = np.random.default_rng(seed)
    events = DAY0 + pd.to_timedelta(np.sort(rng.integers(0, 8 * 86_400, n)), unit="s")
    return pd.DataFrame(
        {
            "transaction_id": [f"T{i:03d}" for i in range(n)],
            "customer_id": rng.choice(["C1", "C2", "C3", "C4", "C5"], n),
            "merchant_id": rng.choice(["M1", "M2", "M3"], n),
            "amount": rng.uniform(5, 200, n).round(2) + shift_amounts,
            "event_timestamp": events,
            "is_fraud": (rng.uniform(size=n) < 0.1).astype(int),
            "label_timestamp": events + pd.Timedelta(hours=6),
        }
    )


def build(raw: pd.DataFrame, repo: Path, home: Path) -> object:
    return build_features(raw, repo, home, validation_days=2, test_days=2, warmup_days=2)


def served_files(home: Path) -> dict[str, bytes]:
    """What serving and retrieval read: registry, online store, the live generation's sources."""
    feast = home / "feast"
    files = {name: (feast / name).read_bytes() for name in ("registry.db", "online_store.db")}
    current = generations.current_generation(home)
    assert current is not None, "no live generation"
    for source in sorted(current.iterdir()):
        files[f"data/current/{source.name}"] = source.read_bytes()
    files["data/current ->"] = os.readlink(feast / "data" / "current").encode()
    return files


def leftovers(home: Path) -> list[str]:
    feast = home / "feast"
    staging = (
        sorted(p.name for p in (feast / "staging").iterdir())
        if (feast / "staging").exists()
        else []
    )
    journal = ["commit.json"] if (feast / "commit.json").exists() else []
    return staging + journal


def generation_folders(home: Path) -> list[str]:
    data = home / "feast" / "data"
    return sorted(p.name for p in data.iterdir() if p.is_dir() and not p.is_symlink())


@pytest.fixture
def built(repo_root: Path, kaizen_home: Path) -> dict[str, bytes]:
    """A good build; what serving reads after it."""
    build(history(), repo_root / "feature_repo", kaizen_home)
    return served_files(kaizen_home)


def test_bad_transactions_change_nothing(
    repo_root: Path, kaizen_home: Path, built: dict[str, bytes]
) -> None:
    bad = history(seed=6)
    bad.loc[17, "amount"] = -3.0
    with pytest.raises(ValueError, match=r"'amount' must be finite and > 0, got -3.0 at row 17"):
        build(bad, repo_root / "feature_repo", kaizen_home)
    assert served_files(kaizen_home) == built


def test_a_window_without_transactions_is_refused_before_anything_is_written(
    repo_root: Path, kaizen_home: Path, built: dict[str, bytes]
) -> None:
    # Days 0-3 and day 9: the 2-day validation window (days 6-7) holds no transaction.
    raw = history(seed=7)
    raw = raw[raw.event_timestamp < DAY0 + pd.Timedelta(days=4)].copy()
    late = raw.iloc[:12].copy()
    late["transaction_id"] = [f"L{i}" for i in range(12)]
    late["event_timestamp"] = (
        DAY0 + pd.Timedelta(days=9, hours=10) + pd.to_timedelta(np.arange(12), unit="min")
    )
    late["label_timestamp"] = late.event_timestamp + pd.Timedelta(hours=1)
    late["is_fraud"] = [1, 0] * 6
    with pytest.raises(ValueError) as refused:
        build(pd.concat([raw, late], ignore_index=True), repo_root / "feature_repo", kaizen_home)
    message = str(refused.value)
    assert "the validation window 2026-05-07..2026-05-09 has 0 of the" in message
    assert "set by validation_days=2" in message and "nothing was written" in message
    assert served_files(kaizen_home) == built
    assert leftovers(kaizen_home) == []


def test_a_window_with_one_class_is_refused_as_too_small(
    repo_root: Path, kaizen_home: Path, built: dict[str, bytes]
) -> None:
    raw = history(seed=8)
    in_test = raw.event_timestamp >= DAY0 + pd.Timedelta(days=6)
    raw.loc[in_test, "is_fraud"] = 0
    with pytest.raises(ValueError) as refused:
        build(raw, repo_root / "feature_repo", kaizen_home)
    message = str(refused.value)
    assert (
        f"the test window 2026-05-07..2026-05-09 has {int(in_test.sum())} transactions" in message
    )
    assert "all with is_fraud=0 (set by test_days=2" in message
    assert served_files(kaizen_home) == built


def test_definitions_that_fail_to_apply_change_nothing(
    repo_root: Path, kaizen_home: Path, built: dict[str, bytes], tmp_path: Path
) -> None:
    import shutil

    from kaizen.features import FeatureRepoError

    repo = Path(shutil.copytree(repo_root / "feature_repo", tmp_path / "feature_repo"))
    views = repo / "feature_views.py"
    views.write_text(views.read_text().replace("ttl=timedelta(days=7)", "ttl=timedelta(dayz=7)"))
    with pytest.raises(FeatureRepoError, match="loading the definitions failed"):
        build(history(seed=9), repo, kaizen_home)
    assert served_files(kaizen_home) == built
    assert leftovers(kaizen_home) == []


def test_an_error_after_materialization_changes_nothing(
    repo_root: Path, kaizen_home: Path, built: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.features import build as module

    def retrieval_fails(*args: object, **kwargs: object) -> None:
        raise OSError("No space left on device")

    # Retrieval runs after the staged online store was loaded: the last step before commit.
    monkeypatch.setattr(module, "build_training_frame", retrieval_fails)
    with pytest.raises(OSError, match="No space left"):
        build(history(seed=10, shift_amounts=1000), repo_root / "feature_repo", kaizen_home)
    assert served_files(kaizen_home) == built
    assert leftovers(kaizen_home) == []
    assert generation_folders(kaizen_home) == [os.readlink(kaizen_home / "feast/data/current")]


def test_an_error_in_the_online_store_load_changes_nothing(
    repo_root: Path, kaizen_home: Path, built: dict[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    from kaizen.features import online_load

    def load_fails(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    # The load runs in a thread beside the retrieval; its error is the build's.
    monkeypatch.setattr(online_load, "_rows", load_fails)
    with pytest.raises(sqlite3.OperationalError, match="disk I/O error"):
        build(history(seed=13, shift_amounts=1000), repo_root / "feature_repo", kaizen_home)
    assert served_files(kaizen_home) == built
    assert leftovers(kaizen_home) == []


# A child that builds features with one Feast or Kaizen function replaced by a stop: it
# writes a marker file, then waits to be killed.
CHILD = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    import pandas as pd
    from kaizen.features import build_features

    repo, home, data, marker, where = sys.argv[1:6]

    def stop_here(original):
        def stopped(*args, **kwargs):
            if where == "materialization":
                original(*args, **kwargs)  # half of the views are in the staged store
            Path(marker).write_text("reached")
            while True:
                time.sleep(1)
        return stopped

    if where == "materialization":
        # The online store loads view by view; stop before the second one's rows.
        from kaizen.features import online_load
        original_rows = online_load._rows
        views = []
        def rows(view, table):
            views.append(view.name)
            if len(views) == 2:
                stop_here(lambda: None)()
            return original_rows(view, table)
        online_load._rows = rows
    else:  # the commit, after the registry was published and before the online store
        from kaizen.features import generations
        original = generations._sqlite_copy
        def copy(source, target, **kwargs):
            if target.parent == Path(home) / "feast":
                stop_here(original)()
            return original(source, target, **kwargs)
        generations._sqlite_copy = copy
    build_features(pd.read_parquet(data), repo, home, 2, 2, 2)
    """
)


def kill_build_at(where: str, repo: Path, home: Path, data: Path, tmp_path: Path) -> None:
    marker = tmp_path / f"{where}.reached"
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(repo), str(home), str(data), str(marker), where],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + DEADLINE_S
        while not marker.exists():
            assert child.poll() is None, f"the build ended before {where}: {child.stderr.read()}"
            assert time.monotonic() < deadline, f"the build never reached {where}"
            time.sleep(0.05)
        child.send_signal(signal.SIGKILL)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=60)
        if child.stderr:
            child.stderr.close()
    assert child.returncode == -signal.SIGKILL


def test_a_kill_9_in_the_middle_of_materialization_changes_nothing(
    repo_root: Path, kaizen_home: Path, built: dict[str, bytes], tmp_path: Path
) -> None:
    data = tmp_path / "next.parquet"
    history(seed=11, shift_amounts=1000).to_parquet(data)
    kill_build_at("materialization", repo_root / "feature_repo", kaizen_home, data, tmp_path)

    assert served_files(kaizen_home) == built
    assert leftovers(kaizen_home)  # the killed build's staging folder, until the next build
    # The next build takes the lock the dead one held, removes its leftovers and publishes.
    build(history(seed=12), repo_root / "feature_repo", kaizen_home)
    assert leftovers(kaizen_home) == []
    assert len(generation_folders(kaizen_home)) == 2  # the live one and the one before it


def test_a_kill_9_during_the_commit_is_finished_by_the_next_reader(
    repo_root: Path, kaizen_home: Path, built: dict[str, bytes], tmp_path: Path
) -> None:
    repo = repo_root / "feature_repo"
    data = tmp_path / "next.parquet"
    history(seed=13, shift_amounts=1000).to_parquet(data)
    kill_build_at("commit", repo, kaizen_home, data, tmp_path)
    assert (kaizen_home / "feast" / "commit.json").exists()  # registry published, store not

    # A server starting now finishes the commit before it reads anything.
    store = load_feature_store(repo, kaizen_home)
    assert leftovers(kaizen_home) == []
    after = served_files(kaizen_home)
    assert after["registry.db"] != built["registry.db"]
    assert after["online_store.db"] != built["online_store.db"]
    assert after["data/current ->"] != built["data/current ->"]
    means = store.get_online_features(
        features=["customer_stats_fv:txn_amount_mean_7d"], entity_rows=[{"customer_id": "C1"}]
    ).to_dict()["txn_amount_mean_7d"]
    assert means[0] > 1000  # the killed build's amounts, all shifted by 1000


def test_a_store_opened_before_a_build_reads_the_new_values_after_it(
    repo_root: Path, kaizen_home: Path, built: dict[str, bytes]
) -> None:
    repo = repo_root / "feature_repo"
    store = load_feature_store(repo, kaizen_home)  # as a running server holds it

    def mean_7d() -> float:
        answer = store.get_online_features(
            features=["customer_stats_fv:txn_amount_mean_7d"], entity_rows=[{"customer_id": "C1"}]
        ).to_dict()
        return float(answer["txn_amount_mean_7d"][0])

    before = mean_7d()
    assert before < 1000
    build(history(seed=14, shift_amounts=1000), repo, kaizen_home)
    assert mean_7d() > 1000  # the same open store, no restart


def test_data_errors_of_the_feature_step_name_the_users_file(
    repo_root: Path, settings: Settings, tmp_path: Path
) -> None:
    from kaizen.steps.build_features import features_step
    from kaizen.steps.ingest_data import ingest_step

    # One valid row passes ingest; it cannot be split into training windows.
    csv = tmp_path / "one-row.csv"
    csv.write_text(
        "transaction_id,customer_id,merchant_id,amount,event_timestamp,is_fraud\n"
        "t1,c1,m1,12.5,2026-03-01T10:00:00+00:00,0\n"
    )
    ingested = tmp_path / "transactions.parquet"
    ingest_step(str(csv), ingested, settings=settings)
    outputs = {
        name: tmp_path / f"{name}.parquet"
        for name in ("train_path", "validation_path", "test_path")
    }
    with pytest.raises(ValueError) as refused:
        features_step(
            ingested,
            repo_root / "feature_repo",
            settings=settings,
            manifest_path=tmp_path / "manifest.json",
            **outputs,
        )
    message = str(refused.value)
    assert message.startswith(f"transactions from {csv}: temporal split: the data covers 1 day")
    assert not (settings.home / "feast").exists()
