"""The Feast adapter's parts still work against the real Feast (its version check is in
tests/unit/platform/test_library_versions.py).

The real ``feature_repo/`` is applied through the adapter (Feast's CLI apply path) and
materialized over a small history, as in test_online_reader.py; the in-process plan's
on-demand values are then compared with Feast's own ``get_online_features`` bit for bit,
so a Feast release that changes what it gives an on-demand function fails here.
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from kaizen.features import FeatureRepoError, feast_adapter
from kaizen.features.store import OnlineFeatureReader, _feature_service
from kaizen.platform import library_versions
from kaizen.platform.library_versions import UnsupportedLibraryVersionError
from tests.support.serving import FEATURE_REPO, HISTORY, materialize_history

SERVICE = "fraud_model_v1"


@pytest.fixture(scope="module")
def applied(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The real feature repo applied (through the adapter) and materialized."""
    return materialize_history(tmp_path_factory.mktemp("feast-adapter-home"), HISTORY)


def test_readers_and_apply_check_the_feast_version_first(
    applied: SimpleNamespace, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from kaizen.features import apply_feature_repo

    monkeypatch.setattr(library_versions, "installed_version", lambda library: "0.68.0")
    with pytest.raises(UnsupportedLibraryVersionError, match=r"feast 0\.68\.0"):
        OnlineFeatureReader(applied.store)
    with pytest.raises(UnsupportedLibraryVersionError, match=r"feast 0\.68\.0"):
        apply_feature_repo(FEATURE_REPO, tmp_path / "home")


def test_applying_registers_the_repos_definitions(applied: SimpleNamespace) -> None:
    assert SERVICE in {service.name for service in applied.store.list_feature_services()}
    assert "transaction_context_odfv" in {
        view.name for view in applied.store.list_on_demand_feature_views()
    }
    # Re-applying unchanged definitions is accepted (and changes nothing).
    feast_adapter.apply_repo(applied.store, applied.repo)


def test_definition_files_are_importable_only_while_applying() -> None:
    cwd, path = Path.cwd(), list(sys.path)
    with feast_adapter.definitions_importable(FEATURE_REPO):
        assert Path.cwd() == FEATURE_REPO.resolve()
        assert sys.path[0] == str(FEATURE_REPO)
    assert Path.cwd() == cwd and sys.path == path
    assert "feature_views" not in sys.modules


def test_a_broken_definition_file_is_named(tmp_path: Path) -> None:
    import shutil

    from kaizen.features.store import _open_store

    repo = tmp_path / "feature_repo"
    shutil.copytree(FEATURE_REPO, repo)
    (repo / "broken.py").write_text("raise RuntimeError('no such source')\n")
    home = tmp_path / "home"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("KAIZEN_HOME", str(home))
        store = _open_store(repo, home)
        with pytest.raises(FeatureRepoError, match=r"loading the definitions failed.*no such"):
            feast_adapter.apply_repo(store, repo)


def test_the_in_process_plan_gives_feasts_own_values_bit_for_bit(
    applied: SimpleNamespace,
) -> None:
    store = applied.store
    service = _feature_service(store, SERVICE)
    views = {view.name: view for view in store.list_feature_views()}

    plan = feast_adapter.in_process_plan(store, service, views)

    assert plan is not None, "the real repo's service is no longer computed in process"
    assert [step.prefix for step in plan.steps] == ["transaction_context_odfv"]
    moment = applied.moment
    requests = [
        {
            "customer_id": customer,
            "merchant_id": merchant,
            "amount": amount,
            "transaction_time": (moment - pd.Timedelta(hours=hours)).to_pydatetime(),
        }
        for customer, merchant, amount, hours in [
            ("C1", "M1", 60.0, 0),
            ("C2", "M2", 0.01, 30),
            ("NEW", "M1", 1234.5, 5),
            ("C3", "NEW", 7.25, 49),
        ]
    ]
    ours = plan.lookup(store, requests)
    feasts = store.get_online_features(
        features=service, entity_rows=requests, full_feature_names=True
    ).to_dict()
    on_demand = [name for name in feasts if name.startswith("transaction_context_odfv__")]
    assert on_demand, feasts.keys()
    for name in on_demand:
        np.testing.assert_array_equal(
            np.asarray(ours[name], dtype=np.float64),
            np.asarray(feasts[name], dtype=np.float64),
            err_msg=name,
        )
