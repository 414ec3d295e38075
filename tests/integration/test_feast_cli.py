"""Feast's own CLI on a home a kaizen feature build published: plan, apply, materialize, serve.

Users run ``feast`` by hand from the repository root after exporting the README's default
home as an absolute path, ``export KAIZEN_HOME="$PWD/.kaizen"`` (docs/data.md, "Feast's own
CLI"). Here that root is a temporary folder holding ``.kaizen`` (published with
``publish_feature_tables`` and the real ``feature_repo/``) and a ``feature_repo`` link to the
real repo; every command is Feast's CLI in a subprocess started in that folder, with
``KAIZEN_FEAST_DATA_URI`` and ``KAIZEN_FEAST_OFFLINE_STORE`` removed from its environment.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from kaizen.features import compute_feature_tables, load_feature_store, publish_feature_tables
from kaizen.features.generations import current_generation
from tests.support.serving import HISTORY, free_port, http_call, stop_process, wait_for_http

REPO = Path(__file__).resolve().parents[2] / "feature_repo"
FEAST = Path(sys.executable).with_name("feast")
VIEWS = ("customer_stats_fv", "merchant_stats_fv")
# The documented way to run Feast's CLI with the README's default home (docs/data.md).
EXPORT_HOME = 'export KAIZEN_HOME="$PWD/.kaizen"'
ANSI = re.compile(r"\x1b\[[0-9;]*m")
# 2025-12-03T16:06:00Z: 16 is the UTC hour every form of this instant must give.
INSTANT = datetime(2025, 12, 3, 16, 6, tzinfo=UTC)
SECONDS = int(INSTANT.timestamp())
assert SECONDS == 1764777960


def feast_env(home: str | None) -> dict[str, str]:
    """The caller's environment for a hand-run ``feast``: ``KAIZEN_HOME=home`` (unset when
    None), no build override, and the venv's ``feast`` first on ``PATH``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in {"KAIZEN_HOME", "KAIZEN_FEAST_DATA_URI", "KAIZEN_FEAST_OFFLINE_STORE"}
    }
    if home is not None:
        env["KAIZEN_HOME"] = home
    env["PATH"] = f"{FEAST.parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_feast(root: Path, *args: str, home: str | None = None) -> subprocess.CompletedProcess:
    """``feast -c feature_repo ARGS`` started in ``root`` with ``KAIZEN_HOME=home`` (default:
    ``root/.kaizen``, what ``$PWD/.kaizen`` expands to there)."""
    return subprocess.run(
        [str(FEAST), "-c", "feature_repo", *args],
        cwd=root,
        env=feast_env(str(root / ".kaizen") if home is None else home),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def run_shell(root: Path, line: str) -> subprocess.CompletedProcess:
    """A command line as a user types it in ``root``, without ``KAIZEN_HOME`` set."""
    env = feast_env(None)
    env["PWD"] = str(root)  # what a shell started in root has; bash keeps it as $PWD
    return subprocess.run(
        ["bash", "-c", line],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def text(completed: subprocess.CompletedProcess) -> str:
    """What Feast printed on stdout, without colours."""
    return ANSI.sub("", completed.stdout)


def explain(completed: subprocess.CompletedProcess) -> str:
    return f"exit {completed.returncode}\n{completed.stdout}\n{completed.stderr[-4000:]}"


def updated_objects(output: str) -> set[str]:
    return set(re.findall(r"^Updated (.+)$", output, flags=re.MULTILINE))


def assert_no_infra_or_object_change(completed: subprocess.CompletedProcess) -> None:
    """Feast's own words for "nothing to do": no registry change, no infra change."""
    output = text(completed)
    assert completed.returncode == 0, explain(completed)
    assert "No changes to registry" in output, explain(completed)
    assert "No changes to infrastructure" in output, explain(completed)
    assert not re.search(r"^(Created|Updated|Deleted) ", output, flags=re.MULTILINE), output


def registry_definitions(path: Path):
    """The registry's contents without what Feast rewrites on every apply: the registry's
    version and time, the views' last-update time, and their batch sources' meta times and
    class name (the in-place update writes the declared source's proto, which has none)."""
    from feast.protos.feast.core.Registry_pb2 import Registry

    registry = Registry()
    registry.ParseFromString(path.read_bytes())
    registry.ClearField("last_updated")
    registry.ClearField("version_id")
    for view in registry.feature_views:
        view.meta.ClearField("last_updated_timestamp")
        view.spec.batch_source.ClearField("meta")
        view.spec.batch_source.ClearField("data_source_class_type")
    return registry


def source_paths(path: Path) -> dict[str, str]:
    registry = registry_definitions(path)
    return {
        view.spec.name: view.spec.batch_source.file_options.uri for view in registry.feature_views
    }


def repo_files(repo: Path) -> set[Path]:
    return {path.relative_to(repo) for path in repo.rglob("*")}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """A folder laid out like the repository root: ``feature_repo`` (a link to the real one)
    and ``.kaizen``, where a kaizen feature build over HISTORY was published."""
    root = tmp_path_factory.mktemp("feast-cli-root")
    (root / "feature_repo").symlink_to(REPO, target_is_directory=True)
    home = root / ".kaizen"
    tables = compute_feature_tables(HISTORY)
    publish_feature_tables(tables, REPO, home)
    generation = current_generation(home)
    assert generation is not None
    return SimpleNamespace(
        root=root,
        home=home,
        tables=tables,
        registry=home / "feast" / "registry.db",
        online=home / "feast" / "online_store.db",
        sources={
            "customer_stats_fv": (generation / "customer_stats.parquet").as_posix(),
            "merchant_stats_fv": (generation / "merchant_stats.parquet").as_posix(),
        },
    )


@pytest.fixture(scope="module")
def planned(built: SimpleNamespace) -> SimpleNamespace:
    """``feast plan`` right after the build, typed as docs/data.md shows."""
    before = (built.registry.read_bytes(), built.online.read_bytes())
    completed = run_shell(built.root, f"{EXPORT_HOME} && feast -c feature_repo plan")
    after = (built.registry.read_bytes(), built.online.read_bytes())
    return SimpleNamespace(completed=completed, before=before, after=after)


@pytest.fixture(scope="module")
def applied_twice(built: SimpleNamespace, planned: SimpleNamespace) -> SimpleNamespace:
    """``feast apply`` twice in a row after the build (and after ``feast plan``)."""
    before = registry_definitions(built.registry)
    runs, definitions = [], []
    for _ in range(2):
        runs.append(run_feast(built.root, "apply"))
        definitions.append(registry_definitions(built.registry))
    return SimpleNamespace(before=before, runs=runs, definitions=definitions)


def test_plan_after_a_build_changes_nothing(planned: SimpleNamespace) -> None:
    assert_no_infra_or_object_change(planned.completed)
    assert planned.after == planned.before  # registry.db and online_store.db, byte for byte


def test_apply_after_a_build_keeps_every_definition(
    built: SimpleNamespace, applied_twice: SimpleNamespace
) -> None:
    for completed in applied_twice.runs:
        assert_no_infra_or_object_change(completed)
    # Feast rewrites registry.db (its version and times); everything else stays as the build
    # published it: views, sources, on-demand view, service, infra.
    assert applied_twice.definitions[0] == applied_twice.before
    assert applied_twice.definitions[1] == applied_twice.before
    assert source_paths(built.registry) == built.sources


def _customer_row(home: Path) -> dict[str, list]:
    store = load_feature_store(REPO, home)
    return store.get_online_features(
        features=[
            "customer_stats_fv:txn_count_7d",
            "customer_stats_fv:txn_amount_sum_7d",
            "merchant_stats_fv:txn_count_30d",
        ],
        entity_rows=[{"customer_id": "C1", "merchant_id": "M1"}],
    ).to_dict()


def test_materialize_after_a_build_loads_the_same_values(built: SimpleNamespace) -> None:
    served = _customer_row(built.home)
    # C1 in the 7 days before the data ends (day 8): H1, H2 and A; M1: H1, A, S1 and D.
    assert served["txn_count_7d"] == [3] and served["txn_amount_sum_7d"] == [320.0]
    assert served["txn_count_30d"] == [4]
    end = built.tables.materialize_until
    # A build records no Feast materialization history, so incremental has nothing to redo
    # (it starts at now minus the TTL); an explicit window reloads the build's rows.
    incremental = run_feast(built.root, "materialize-incremental", end.tz_convert(None).isoformat())
    assert incremental.returncode == 0, explain(incremental)
    assert _customer_row(built.home) == served
    start = end - pd.Timedelta(days=30)
    explicit = run_feast(
        built.root,
        "materialize",
        start.tz_convert(None).isoformat(),
        end.tz_convert(None).isoformat(),
    )
    assert explicit.returncode == 0, explain(explicit)
    assert "Materializing 2 feature views" in text(explicit)
    assert _customer_row(built.home) == served


@pytest.fixture(scope="module")
def feast_server(built: SimpleNamespace) -> Iterator[int]:
    """``feast -c feature_repo serve -h 127.0.0.1 -p PORT`` in the root, ready on its
    ``/health``; stopped (terminate, then kill) when the module is done."""
    port = free_port()
    log_path = built.root / f"feast-serve-{port}.log"
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(FEAST), "-c", "feature_repo", "serve", "-h", "127.0.0.1", "-p", str(port)],
            cwd=built.root,
            env=feast_env(str(built.home)),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_http(process, port, "/health", lambda: log_path.read_text()[-4000:], 120)
        yield port
    finally:
        stop_process(process)


def online_features(port: int, transaction_time: object) -> tuple[int, object]:
    return http_call(
        port,
        "/get-online-features",
        {
            "feature_service": "fraud_model_v1",
            "entities": {
                "customer_id": ["C1"],
                "merchant_id": ["M1"],
                "amount": [60.0],
                "transaction_time": [transaction_time],
            },
        },
        timeout=60,
    )


@pytest.mark.parametrize(
    "transaction_time",
    [
        pytest.param(SECONDS, id="epoch-seconds"),
        pytest.param(SECONDS + 0.5, id="epoch-seconds-fraction"),
        pytest.param(SECONDS * 1000 + 123, id="epoch-milliseconds"),
        pytest.param(
            INSTANT.astimezone(timezone(timedelta(hours=5, minutes=30))).isoformat(),
            id="iso-offset",  # 2025-12-03T21:36:00+05:30
        ),
        pytest.param(INSTANT.strftime("%Y-%m-%dT%H:%M:%SZ"), id="iso-z"),
        pytest.param(INSTANT.strftime("%Y-%m-%dT%H:%M:%S"), id="iso-naive-is-utc"),
    ],
)
def test_feast_serve_reads_request_times_as_the_same_instant(
    feast_server: int, transaction_time: object
) -> None:
    status, body = online_features(feast_server, transaction_time)
    assert status == 200, body
    assert isinstance(body, dict), body
    served = dict(zip(body["metadata"]["feature_names"], body["results"], strict=True))
    assert served["hour_of_day"]["values"] == [INSTANT.hour]
    assert served["hour_of_day"]["statuses"] == ["PRESENT"]
    assert served["txn_count_7d"]["values"] == [3]  # the stored features come along


@pytest.mark.parametrize(
    "transaction_time",
    [
        pytest.param(SECONDS * 10**6, id="epoch-microseconds"),
        pytest.param(SECONDS * 10**9, id="epoch-nanoseconds"),
    ],
)
def test_feast_serve_refuses_a_number_that_is_not_seconds_or_milliseconds(
    feast_server: int, transaction_time: int
) -> None:
    status, body = online_features(feast_server, transaction_time)
    # Feast's server answers any error from the on-demand view with 500 and the message as a
    # JSON string.
    assert status == 500, body
    assert isinstance(body, str) and "is not epoch seconds or milliseconds" in body, body
    assert http_call(feast_server, "/health")[0] == 200  # and keeps serving


def test_a_relative_kaizen_home_is_refused_and_the_documented_line_works(
    tmp_path: Path,
) -> None:
    repo = Path(
        shutil.copytree(
            REPO, tmp_path / "feature_repo", ignore=shutil.ignore_patterns("__pycache__")
        )
    )
    before = repo_files(repo)

    completed = run_feast(tmp_path, "plan", home=".kaizen")

    assert completed.returncode != 0, explain(completed)
    assert "KAIZEN_HOME='.kaizen' is relative" in completed.stderr, explain(completed)
    assert "Give it as an absolute path, e.g. `KAIZEN_HOME=$PWD/.kaizen" in completed.stderr
    assert repo_files(repo) == before
    assert not (tmp_path / ".kaizen").exists()

    # Before any build Feast needs the registry's folder (it creates the file, not folders).
    completed = run_shell(
        tmp_path, f'{EXPORT_HOME} && mkdir -p "$KAIZEN_HOME/feast" && feast -c feature_repo plan'
    )
    assert completed.returncode == 0, explain(completed)
    assert "Created feature service fraud_model_v1" in text(completed), explain(completed)
    assert repo_files(repo) == before
