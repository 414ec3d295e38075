"""Feature build: the feature step's training-set build vs a hand-written DuckDB query.

What is measured, each beside its baseline on the same transactions:
  kaizen    ``kaizen.features.build.build_features(transactions, repo_path=feature_repo/,
            kaizen_home=<fresh temp dir>)``: the point-in-time tables, the Feast repo, the
            online store and the train/validation/test frames (``FeatureBuildResult``).
  baseline  one DuckDB query in one process, as a data scientist would write it without a
            feature store: the same 17 features for the same rows (every transaction after
            the 7-day warm-up, split by time into the last 5 days (test), the 5 before
            (validation) and the rest (train)) straight from the raw transactions.
            Customer windows are RANGE window frames ``(t - w, t)`` over integer nanoseconds;
            a merchant's daily 00:00 UTC snapshot is the same kind of window over one stream
            per merchant (its transactions at their event time, its labels at their label
            time, so a label counts once known, and each event at its day's midnight); pandas
            only puts the id columns back by row number and cuts the splits. It builds the
            frames only: no Feast registry, online store or parquet sources, and no input
            validation; DuckDB uses its default threads (all cores).

Data: ``generate_transactions(GeneratorConfig(rows=N, customers=20_000, merchants=50_000,
days=180))`` for N in 20,000, 200,000 and 1,000,000 (``--sizes`` picks some), each generated
once and written to parquet. Each (size, implementation) runs in a fresh subprocess that reads
the parquet, times only the build (``perf_counter`` around the call; imports and reading
excluded) and reports its peak RSS (``ru_maxrss``, which includes the input frame and the
imports; the peak before the call is reported too). The two implementations of one size run
back to back; each figure is the best time of ``--repeat`` runs (default 3, but 1 at
1,000,000 rows to keep the run short) and the highest peak RSS of them.

The kaizen child also reports where its time went (``FeatureBuildResult.seconds``): the
tables, the sources written and the repo applied, the online store loaded (which the baseline
does not do; it runs in a thread beside the retrieval, so its time overlaps the next part's),
the training rows retrieved and split, and the commit. The target is judged on the whole
build.

Cross-check (on the smallest size, before any figure is trusted): the baseline's frames and
build_features' must hold the same transactions in each split and the same values for every
feature, matched by ``transaction_id`` and feature name: counts and the hour exactly, other
floats within 1e-9 relative (1e-9 absolute near 0). It is done twice: on the timed data, and
on the same data plus transactions placed exactly on the boundaries (a customer's transaction
exactly 1h/24h/7d before another or at the same instant, merchant transactions at 00:00 UTC
and exactly 30 days before one, labels known exactly at a snapshot or 30 days before it, a
label at its event's time). A disagreement exits with status 2: the timing would compare
different work.

Targets (issue 11):
  time     at 1,000,000 rows: kaizen seconds <= 2 x baseline seconds
  memory   at 1,000,000 rows: kaizen peak RSS < 2 GB (2e9 bytes, the whole process)
  growth   cost linear in the rows, read as: kaizen seconds per row at 1,000,000 rows
           <= 1.5 x kaizen seconds per row at 200,000 rows (the 20,000-row figure is mostly
           fixed cost, so it is shown but not judged)
A target whose sizes were not run is reported as not measured.

Exit status: 0, also when a target is missed, unless ``--strict`` (then 1); 1 when a build
fails; 2 when the cross-check finds different values.
Results: ``benchmarks/results/features.json``.

    .venv/bin/python benchmarks/features.py [--sizes 20000 200000] [--repeat 3] [--strict]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SIZES = (20_000, 200_000, 1_000_000)
CUSTOMERS = 20_000
MERCHANTS = 50_000
DAYS = 180
SEED = 42
DEFAULT_REPEAT = 3
# Above this many rows the default is a single run (the 1M-row kaizen build is long).
SINGLE_RUN_FROM_ROWS = 1_000_000
TARGET_SIZE = 1_000_000
GROWTH_FROM_SIZE = 200_000
TARGET_TIME_RATIO = 2.0
TARGET_PEAK_RSS_BYTES = 2_000_000_000
TARGET_GROWTH_RATIO = 1.5
RELATIVE_TOLERANCE = 1e-9
ABSOLUTE_TOLERANCE = 1e-9
# Boundary transactions added per kind for the second cross-check.
BOUNDARY_CASES_PER_KIND = 300
IMPLEMENTATIONS = ("kaizen", "baseline")

# The split of kaizen.features.split's defaults, restated so the baseline owns its arithmetic.
WARMUP_DAYS = 7
VALIDATION_DAYS = 5
TEST_DAYS = 5

NS_PER_HOUR = 3_600 * 10**9
NS_PER_DAY = 24 * NS_PER_HOUR
CUSTOMER_WINDOWS_NS = {"1h": NS_PER_HOUR, "24h": NS_PER_DAY, "7d": 7 * NS_PER_DAY}
MERCHANT_WINDOW_NS = 30 * NS_PER_DAY

CUSTOMER_VIEW = "customer_stats_fv"
MERCHANT_VIEW = "merchant_stats_fv"
CONTEXT_VIEW = "transaction_context_odfv"
FEATURE_NAMES: tuple[str, ...] = (
    *(
        f"{CUSTOMER_VIEW}__{feature}_{window}"
        for window in CUSTOMER_WINDOWS_NS
        for feature in ("txn_count", "txn_amount_sum", "txn_amount_mean")
    ),
    f"{MERCHANT_VIEW}__txn_count_30d",
    f"{MERCHANT_VIEW}__label_count_30d",
    f"{MERCHANT_VIEW}__fraud_rate_30d",
    *(
        f"{CONTEXT_VIEW}__{feature}"
        for feature in ("amount_log", "amount_to_mean_7d", "hour_of_day", "hour_sin", "hour_cos")
    ),
)
# Integer-valued features, compared exactly.
EXACT_FEATURES = frozenset(
    name for name in FEATURE_NAMES if "_count_" in name or name.endswith("hour_of_day")
)
SPLITS = ("train", "validation", "test")
KEY_COLUMNS = (
    "transaction_id",
    "customer_id",
    "merchant_id",
    "event_timestamp",
    "is_fraud",
    "label_timestamp",
)


# --------------------------------------------------------------------------------------
# The baseline: one DuckDB query from raw transactions to the three frames.


def baseline_build(transactions: pd.DataFrame) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The training frames computed with DuckDB straight from the raw transactions.

    Args:
        transactions: Raw transactions (``kaizen.data.columns.RAW_COLUMNS``), UTC timestamps.

    Returns:
        ``({"train": ..., "validation": ..., "test": ...}, feature names)``: each frame has
        the key columns, ``event_timestamp``, ``is_fraud``, ``label_timestamp`` and the
        features as float64, sorted by time.
    """
    import duckdb
    import numpy as np
    import pandas as pd

    event_ns = transactions["event_timestamp"].array.asi8
    # Integer nanoseconds (exact, where DuckDB's timestamps are microseconds) and a row
    # number: the query never moves the id strings, pandas takes them by row at the end.
    raw = pd.DataFrame(
        {
            "row": np.arange(len(transactions)),
            "customer_id": transactions["customer_id"].to_numpy(),
            "merchant_id": transactions["merchant_id"].to_numpy(),
            "amount": transactions["amount"].to_numpy(dtype="float64"),
            "is_fraud": transactions["is_fraud"].to_numpy(dtype="int64"),
            "ts": event_ns,
            "label_ts": transactions["label_timestamp"].array.asi8,
        },
        copy=False,
    )
    # Whole UTC days from the first event's day to the end of the last event's day.
    first_day = int(event_ns.min()) // NS_PER_DAY * NS_PER_DAY
    data_end = int(event_ns.max()) // NS_PER_DAY * NS_PER_DAY + NS_PER_DAY
    train_start = first_day + WARMUP_DAYS * NS_PER_DAY
    test_start = data_end - TEST_DAYS * NS_PER_DAY
    validation_start = test_start - VALIDATION_DAYS * NS_PER_DAY

    def open_window(partition: str, length_ns: int) -> str:
        # The open interval (t - w, t) over integer nanoseconds: w - 1 ns to 1 ns before t.
        return (
            f"(PARTITION BY {partition} ORDER BY t "
            f"RANGE BETWEEN {length_ns - 1} PRECEDING AND 1 PRECEDING)"
        )

    customer_windows = ",\n        ".join(
        f"w{name} AS {open_window('customer_id', length)}"
        for name, length in CUSTOMER_WINDOWS_NS.items()
    )
    customer_aggregates = ",\n        ".join(
        f"COUNT(*) OVER w{name} AS n_{name}, COALESCE(SUM(amount) OVER w{name}, 0) AS s_{name}"
        for name in CUSTOMER_WINDOWS_NS
    )
    customer_features = ",\n    ".join(
        f'c.n_{name}::DOUBLE AS "{CUSTOMER_VIEW}__txn_count_{name}",\n    '
        f'c.s_{name} AS "{CUSTOMER_VIEW}__txn_amount_sum_{name}",\n    '
        f"CASE WHEN c.n_{name} > 0 THEN c.s_{name} / c.n_{name} ELSE 0 END "
        f'AS "{CUSTOMER_VIEW}__txn_amount_mean_{name}"'
        for name in CUSTOMER_WINDOWS_NS
    )
    hour = f"(c.t % {NS_PER_DAY} // {NS_PER_HOUR})"
    query = f"""
WITH customer AS (
    SELECT row, t, amount,
        {customer_aggregates}
    FROM (SELECT row, customer_id, ts AS t, amount FROM raw)
    WINDOW {customer_windows}
),
-- One stream per merchant: its transactions at their event time, its labels at the time
-- they became known, and each label event (weight 0) at the 00:00 UTC snapshot starting
-- its day. The window ending at a snapshot counts what the snapshot holds; before the
-- merchant's first transaction that is nothing, like the all-zero first row the feature
-- store joins on the merchant's first day.
merchant_stream AS (
    SELECT merchant_id, ts AS t, 1 AS txn, 0 AS label, 0 AS fraud, NULL::BIGINT AS row
    FROM raw
    UNION ALL
    SELECT merchant_id, label_ts, 0, 1, is_fraud, NULL FROM raw
    UNION ALL
    SELECT merchant_id, ts - ts % {NS_PER_DAY}, 0, 0, 0, row FROM raw WHERE ts >= {train_start}
),
merchant AS (
    SELECT row, txn_count, label_count, fraud_count FROM (
        SELECT row,
            COALESCE(SUM(txn) OVER w, 0) AS txn_count,
            COALESCE(SUM(label) OVER w, 0) AS label_count,
            COALESCE(SUM(fraud) OVER w, 0) AS fraud_count
        FROM merchant_stream
        WINDOW w AS {open_window("merchant_id", MERCHANT_WINDOW_NS)}
    )
    WHERE row IS NOT NULL
)
SELECT c.row, c.t,
    {customer_features},
    m.txn_count::DOUBLE AS "{MERCHANT_VIEW}__txn_count_30d",
    m.label_count::DOUBLE AS "{MERCHANT_VIEW}__label_count_30d",
    CASE WHEN m.label_count > 0 THEN m.fraud_count / m.label_count ELSE 0 END::DOUBLE
        AS "{MERCHANT_VIEW}__fraud_rate_30d",
    ln(1 + c.amount) AS "{CONTEXT_VIEW}__amount_log",
    CASE WHEN c.n_7d > 0 AND c.s_7d > 0 THEN c.amount / (c.s_7d / c.n_7d) ELSE 1 END
        AS "{CONTEXT_VIEW}__amount_to_mean_7d",
    {hour}::DOUBLE AS "{CONTEXT_VIEW}__hour_of_day",
    sin(2 * pi() * {hour} / 24) AS "{CONTEXT_VIEW}__hour_sin",
    cos(2 * pi() * {hour} / 24) AS "{CONTEXT_VIEW}__hour_cos"
FROM customer c
JOIN merchant m USING (row)
ORDER BY c.t, c.row
"""
    with duckdb.connect() as connection:
        connection.register("raw", raw)
        features = connection.execute(query).df()
    rows = features.pop("row").to_numpy()
    times = features.pop("t").to_numpy(dtype="int64")
    keys = transactions[list(KEY_COLUMNS)].take(rows).reset_index(drop=True)
    frame = pd.concat([keys, features], axis=1)
    cuts = np.searchsorted(times, [validation_start, test_start], side="left")
    bounds = [0, int(cuts[0]), int(cuts[1]), len(frame)]
    frames = {
        name: frame.iloc[bounds[i] : bounds[i + 1]].reset_index(drop=True)
        for i, name in enumerate(SPLITS)
    }
    return frames, list(FEATURE_NAMES)


# --------------------------------------------------------------------------------------
# Child: one timed build in a fresh process.


def _child(args: argparse.Namespace) -> int:
    import pandas as pd

    sys.path.insert(0, str(REPO))
    transactions = pd.read_parquet(args.input)
    if args.impl == "kaizen":
        import feast  # noqa: F401 - imported before the clock starts, like every other import

        from kaizen.features.build import build_features

        home = Path(args.kaizen_home or tempfile.mkdtemp(prefix="kaizen-bench-home-"))
        home.mkdir(parents=True, exist_ok=True)

        def build() -> tuple[dict[str, pd.DataFrame], list[str]]:
            result = build_features(transactions, repo_path=REPO / "feature_repo", kaizen_home=home)
            parts.update(result.seconds)
            splits = {"train": result.train, "validation": result.validation}
            return {**splits, "test": result.test}, list(result.feature_names)
    else:
        import duckdb  # noqa: F401

        def build() -> tuple[dict[str, pd.DataFrame], list[str]]:
            return baseline_build(transactions)

    parts: dict[str, float] = {}

    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Feast prints its progress on stdout, which carries only this process's JSON answer.
    with contextlib.redirect_stdout(sys.stderr):
        started = time.perf_counter()
        frames, names = build()
        seconds = time.perf_counter() - started
    peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    if args.dump:
        _dump(frames, names, args.dump)
    if args.impl == "kaizen" and not args.kaizen_home:
        shutil.rmtree(home, ignore_errors=True)
    answer = {
        "impl": args.impl,
        "seconds": seconds,
        "peak_rss_kib": peak_rss,
        "peak_rss_before_build_kib": rss_before,
        "rows": {name: len(frame) for name, frame in frames.items()},
        "features": len(names),
        "parts": parts,
    }
    print(json.dumps(answer), flush=True)
    return 0


def _dump(frames: dict[str, pd.DataFrame], names: list[str], path: str) -> None:
    """Write the transaction ids, split and features of every frame, for the cross-check."""
    import pandas as pd

    parts = [
        frame[["transaction_id", *names]].assign(split=split) for split, frame in frames.items()
    ]
    combined = pd.concat(parts, ignore_index=True)
    combined.attrs = {}
    combined.to_parquet(path, index=False)
    Path(path + ".names.json").write_text(json.dumps(names))


# --------------------------------------------------------------------------------------
# Parent: data, children, cross-check, report.


def _run_child(
    impl: str,
    data: Path,
    work: Path,
    timeout: float | None,
    dump: Path | None = None,
) -> dict[str, Any]:
    """One build in a fresh interpreter; its JSON answer, or ``{"error": ...}``."""
    home = Path(tempfile.mkdtemp(prefix=f"home-{impl}-", dir=work))
    command = [sys.executable, str(Path(__file__).resolve()), "--child", "--impl", impl]
    command += ["--input", str(data), "--kaizen-home", str(home)]
    if dump is not None:
        command += ["--dump", str(dump)]
    env = dict(os.environ)
    # The build must read the sources it writes in the fresh home, not a configured store.
    env.pop("KAIZEN_FEAST_DATA_URI", None)
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO
        )
    except subprocess.TimeoutExpired:
        return {"impl": impl, "error": f"timed out after {timeout:g} s"}
    finally:
        shutil.rmtree(home, ignore_errors=True)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = "\n".join(done.stderr.strip().splitlines()[-15:])
        return {"impl": impl, "error": f"exit status {done.returncode}:\n{tail}"}
    answer: dict[str, Any] = json.loads(lines[-1])
    return answer


def _generate(rows: int) -> pd.DataFrame:
    from kaizen.data.generator import GeneratorConfig, generate_transactions

    config = GeneratorConfig(
        seed=SEED, rows=rows, customers=CUSTOMERS, merchants=MERCHANTS, days=DAYS
    )
    return generate_transactions(config)


def _with_boundary_cases(transactions: pd.DataFrame, per_kind: int) -> pd.DataFrame:
    """The transactions plus copies of some placed exactly on the features' boundaries.

    Each copy keeps its original's customer, merchant, amount and label unless its kind
    says otherwise; copies outside the original time range are dropped (they would move
    the split windows).
    """
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(SEED)
    hour, day = pd.Timedelta(hours=1), pd.Timedelta(days=1)
    month = pd.Timedelta(MERCHANT_WINDOW_NS, unit="ns")
    events = transactions["event_timestamp"]
    first, last = events.min(), events.max()
    per_kind = min(per_kind, len(transactions))
    picked = transactions.iloc[rng.choice(len(transactions), size=per_kind, replace=False)]
    picked = picked.reset_index(drop=True)
    midnight = picked["event_timestamp"].dt.floor("D")
    other_merchant = transactions["merchant_id"].to_numpy()[
        rng.integers(0, len(transactions), per_kind)
    ]
    at = picked["event_timestamp"]
    # kind: (event time, label time or None for one hour later, merchant or None)
    kinds: dict[str, tuple[pd.Series, pd.Series | None, Any]] = {
        "customer-1h-before": (at - hour, None, other_merchant),
        "customer-24h-before": (at - day, None, other_merchant),
        "customer-7d-before": (at - 7 * day, None, other_merchant),
        "customer-same-instant": (at, None, other_merchant),
        "merchant-at-midnight": (midnight, None, None),
        "merchant-at-midnight-30d-before": (midnight - month, None, None),
        "label-known-at-midnight": (midnight - 2 * hour, midnight, None),
        "label-known-at-midnight-30d-before": (midnight - month - 2 * hour, midnight - month, None),
        "label-at-event-time": (at - 3 * hour, at - 3 * hour, None),
    }
    copies = []
    for kind, (event, label, merchant) in kinds.items():
        copy = picked.copy()
        copy["transaction_id"] = [f"edge-{kind}-{i}" for i in range(per_kind)]
        copy["event_timestamp"] = event.to_numpy()
        copy["label_timestamp"] = (event + hour if label is None else label).to_numpy()
        if merchant is not None:
            copy["merchant_id"] = merchant
        copy["is_fraud"] = rng.integers(0, 2, per_kind)
        copies.append(copy)
    combined = pd.concat([transactions, *copies], ignore_index=True)
    inside = (combined["event_timestamp"] >= first) & (combined["event_timestamp"] <= last)
    combined = combined[inside].sort_values("event_timestamp", kind="stable")
    return combined.reset_index(drop=True)


def _cross_check(kaizen_dump: Path, baseline_dump: Path) -> dict[str, Any]:
    """Compare two dumps row by row and feature by feature; ``ok`` says if they agree."""
    import numpy as np
    import pandas as pd

    problems: list[str] = []
    kaizen_names = json.loads(Path(str(kaizen_dump) + ".names.json").read_text())
    baseline_names = json.loads(Path(str(baseline_dump) + ".names.json").read_text())
    if set(kaizen_names) != set(baseline_names):
        problems.append(
            f"feature names differ: only kaizen {sorted(set(kaizen_names) - set(baseline_names))}"
            f", only baseline {sorted(set(baseline_names) - set(kaizen_names))}"
        )
    kaizen = pd.read_parquet(kaizen_dump).set_index("transaction_id")
    baseline = pd.read_parquet(baseline_dump).set_index("transaction_id")
    only_kaizen = kaizen.index.difference(baseline.index)
    only_baseline = baseline.index.difference(kaizen.index)
    if len(only_kaizen) or len(only_baseline):
        problems.append(
            f"rows differ: {len(only_kaizen)} only in kaizen (e.g. {list(only_kaizen[:3])}), "
            f"{len(only_baseline)} only in the baseline (e.g. {list(only_baseline[:3])})"
        )
    common = kaizen.index.intersection(baseline.index)
    kaizen, baseline = kaizen.loc[common], baseline.loc[common]
    moved = kaizen["split"].to_numpy() != baseline["split"].to_numpy()
    if moved.any():
        problems.append(f"{int(moved.sum())} row(s) in different splits, e.g. {common[moved][0]}")
    columns: dict[str, dict[str, Any]] = {}
    for name in [name for name in kaizen_names if name in baseline_names]:
        ours = kaizen[name].to_numpy(dtype="float64")
        theirs = baseline[name].to_numpy(dtype="float64")
        difference = np.abs(ours - theirs)
        scale = np.maximum(np.abs(ours), np.abs(theirs))
        relative = np.divide(difference, scale, out=np.zeros_like(difference), where=scale > 0)
        if name in EXACT_FEATURES:
            bad = ours != theirs
        else:
            bad = (difference > ABSOLUTE_TOLERANCE) & (relative > RELATIVE_TOLERANCE)
        bad |= np.isnan(ours) != np.isnan(theirs)
        worst = int(np.nanargmax(difference)) if len(difference) else 0
        columns[name] = {
            "max_abs_diff": float(np.nanmax(difference)) if len(difference) else 0.0,
            "max_rel_diff": float(np.nanmax(relative)) if len(relative) else 0.0,
            "mismatches": int(bad.sum()),
        }
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            problems.append(
                f"{name}: {int(bad.sum())} of {len(bad)} rows differ, e.g. {common[first]}: "
                f"kaizen {ours[first]:.17g}, baseline {theirs[first]:.17g} (largest difference "
                f"{difference[worst]:.3g} at {common[worst]})"
            )
    largest = max(columns.items(), key=lambda item: item[1]["max_abs_diff"], default=None)
    return {
        "ok": not problems,
        "rows": len(common),
        "features": len(columns),
        "largest_abs_diff": largest[1]["max_abs_diff"] if largest else None,
        "largest_abs_diff_feature": largest[0] if largest else None,
        "largest_rel_diff": max((c["max_rel_diff"] for c in columns.values()), default=None),
        "columns": columns,
        "problems": problems,
    }


def _print_cross_check(label: str, check: dict[str, Any]) -> None:
    if check["ok"]:
        print(
            f"cross-check {label}: {check['rows']:,} rows x {check['features']} features agree; "
            f"largest difference {check['largest_abs_diff']:.3g} "
            f"({check['largest_abs_diff_feature']}), largest relative "
            f"{check['largest_rel_diff']:.3g}"
        )
        return
    sys.stdout.flush()
    print(f"CROSS-CHECK FAILED ({label}): baseline and build_features disagree", file=sys.stderr)
    for problem in check["problems"]:
        print(f"  {problem}", file=sys.stderr)


def _mb(kib: float | None) -> str:
    return "-" if kib is None else f"{kib * 1024 / 1e6:,.0f} MB"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--sizes", type=int, nargs="+", default=list(SIZES), help="transaction counts to run"
    )
    parser.add_argument(
        "--repeat",
        type=int,
        default=None,
        help=f"runs per size and implementation (default {DEFAULT_REPEAT}, "
        f"1 from {SINGLE_RUN_FROM_ROWS:,} rows)",
    )
    parser.add_argument("--strict", action="store_true", help="exit 1 when a target is missed")
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds before a build is given up"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--impl", choices=IMPLEMENTATIONS, help=argparse.SUPPRESS)
    parser.add_argument("--input", help=argparse.SUPPRESS)
    parser.add_argument("--kaizen-home", help=argparse.SUPPRESS)
    parser.add_argument("--dump", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args)
    sys.path.insert(0, str(REPO))
    import duckdb

    sizes = sorted(set(args.sizes))
    repeats = {
        size: args.repeat or (1 if size >= SINGLE_RUN_FROM_ROWS else DEFAULT_REPEAT)
        for size in sizes
    }
    results: dict[int, dict[str, dict[str, Any]]] = {}
    checks: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="kaizen-bench-features-") as temp:
        work = Path(temp)
        for size in sizes:
            data = work / f"transactions-{size}.parquet"
            transactions = _generate(size)
            transactions.to_parquet(data, index=False)
            smallest = size == sizes[0]
            if smallest:
                boundary = work / f"transactions-{size}-boundaries.parquet"
                _with_boundary_cases(transactions, BOUNDARY_CASES_PER_KIND).to_parquet(boundary)
            del transactions
            dumps = {impl: work / f"{impl}-{size}.parquet" for impl in IMPLEMENTATIONS}
            results[size] = _measure(
                size, data, repeats[size], work, args.timeout, dumps if smallest else None
            )
            if smallest:
                checks = _cross_checks(size, dumps, boundary, work, args.timeout)
            _print_size(size, results[size])
            if smallest and (len(checks) < 2 or not all(c["ok"] for c in checks.values())):
                break  # figures of builds that disagree (or were not compared) mean nothing

    targets = _targets(results)
    _print_targets(targets)
    result = {
        "benchmark": "features",
        "measured_at": datetime.now(UTC).isoformat(),
        "data": {"customers": CUSTOMERS, "merchants": MERCHANTS, "days": DAYS, "seed": SEED},
        "repeat": {str(size): repeats[size] for size in results},
        "sizes": {str(size): value for size, value in results.items()},
        "cross_check": checks,
        "targets": targets,
        "cpu_count": os.cpu_count(),
        "duckdb": duckdb.__version__,
    }
    out_dir = REPO / "benchmarks" / "results"
    out_dir.mkdir(exist_ok=True)
    (out_dir / "features.json").write_text(json.dumps(result, indent=2))
    if len(checks) < 2 or not all(check["ok"] for check in checks.values()):
        sys.stdout.flush()
        if len(checks) < 2:
            print("CROSS-CHECK NOT DONE: a build at the smallest size failed", file=sys.stderr)
        else:
            print(
                "CROSS-CHECK FAILED: build_features and the baseline computed different values "
                "(see above), so the times compare different work",
                file=sys.stderr,
            )
        return 2
    if any("errors" in line for figures in results.values() for line in figures.values()):
        return 1
    missed = any(target["met"] is False for target in targets.values())
    return 1 if args.strict and missed else 0


def _measure(
    size: int,
    data: Path,
    repeat: int,
    work: Path,
    timeout: float | None,
    dumps: dict[str, Path] | None,
) -> dict[str, dict[str, Any]]:
    """Both implementations on one size, back to back, ``repeat`` times; dumps on the first."""
    runs: dict[str, list[dict[str, Any]]] = {impl: [] for impl in IMPLEMENTATIONS}
    for attempt in range(repeat):
        for impl in IMPLEMENTATIONS:
            dump = dumps[impl] if dumps is not None and attempt == 0 else None
            answer = _run_child(impl, data, work, timeout, dump)
            runs[impl].append(answer)
            if "error" in answer:
                print(f"{impl} build at {size:,} rows failed: {answer['error']}")
    return {impl: _summary(impl_runs) for impl, impl_runs in runs.items()}


def _cross_checks(
    size: int, dumps: dict[str, Path], boundary: Path, work: Path, timeout: float | None
) -> dict[str, Any]:
    """Compare the timed builds' frames, then both builds on the boundary cases."""
    checks: dict[str, Any] = {}
    if not all(path.exists() for path in dumps.values()):
        return checks
    checks["timed_data"] = _cross_check(dumps["kaizen"], dumps["baseline"])
    _print_cross_check(f"{size:,} rows", checks["timed_data"])
    edge_dumps = {impl: work / f"{impl}-boundaries.parquet" for impl in IMPLEMENTATIONS}
    for impl, path in edge_dumps.items():
        answer = _run_child(impl, boundary, work, timeout, path)
        if "error" in answer:
            print(f"{impl} build with boundary cases failed: {answer['error']}")
    if all(path.exists() for path in edge_dumps.values()):
        checks["boundary_cases"] = _cross_check(edge_dumps["kaizen"], edge_dumps["baseline"])
        checks["boundary_cases"]["added_per_kind"] = BOUNDARY_CASES_PER_KIND
        _print_cross_check(f"{size:,} rows + boundary cases", checks["boundary_cases"])
    return checks


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Best time and highest peak RSS of the runs that finished."""
    done = [run for run in runs if "error" not in run]
    summary: dict[str, Any] = {
        "runs": len(runs),
        "seconds": min((run["seconds"] for run in done), default=None),
        "all_seconds": [round(run["seconds"], 3) for run in done],
        "peak_rss_kib": max((run["peak_rss_kib"] for run in done), default=None),
        "peak_rss_before_build_kib": max(
            (run["peak_rss_before_build_kib"] for run in done), default=None
        ),
        "rows": done[0]["rows"] if done else None,
    }
    if done and done[0].get("parts"):
        # The parts of the fastest run: where the time goes.
        fastest = min(done, key=lambda run: run["seconds"])
        summary["parts"] = {name: round(value, 3) for name, value in fastest["parts"].items()}
    errors = [run["error"] for run in runs if "error" in run]
    if errors:
        summary["errors"] = errors
    return summary


def _per_100k(seconds: float | None, size: int) -> float | None:
    return None if seconds is None else seconds / size * 100_000


def _print_size(size: int, figures: dict[str, dict[str, Any]]) -> None:
    kaizen, baseline = figures["kaizen"], figures["baseline"]
    ratio = (
        kaizen["seconds"] / baseline["seconds"]
        if kaizen["seconds"] is not None and baseline["seconds"]
        else None
    )
    for impl, line in figures.items():
        print(
            f"{size:>9,} rows  {impl:8} {_seconds(line['seconds']):>8} s "
            f"({_seconds(_per_100k(line['seconds'], size))} s per 100k rows, "
            f"best of {line['runs']})  peak RSS {_mb(line['peak_rss_kib'])} "
            f"(before the build {_mb(line['peak_rss_before_build_kib'])})"
        )
    if kaizen.get("parts"):
        parts = "  ".join(f"{name} {value:.2f}" for name, value in kaizen["parts"].items())
        print(f"{size:>9,} rows  kaizen parts (s): {parts}")
    rows = kaizen["rows"] or baseline["rows"] or {}
    split_rows = "/".join(f"{rows.get(name, 0):,}" for name in SPLITS)
    print(
        f"{size:>9,} rows  kaizen/baseline time {'-' if ratio is None else f'{ratio:.1f}'}"
        f"  (train/validation/test rows {split_rows})"
    )


def _targets(results: dict[int, dict[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    def seconds(size: int, impl: str) -> float | None:
        value: float | None = results.get(size, {}).get(impl, {}).get("seconds")
        return value

    kaizen_at, baseline_at = seconds(TARGET_SIZE, "kaizen"), seconds(TARGET_SIZE, "baseline")
    ran_target = TARGET_SIZE in results
    time_ratio = kaizen_at / baseline_at if kaizen_at is not None and baseline_at else None
    peak = results.get(TARGET_SIZE, {}).get("kaizen", {}).get("peak_rss_kib")
    peak_bytes = None if peak is None else peak * 1024

    def growth(impl: str) -> float | None:
        large, small = seconds(TARGET_SIZE, impl), seconds(GROWTH_FROM_SIZE, impl)
        if large is None or not small:
            return None
        return (large / TARGET_SIZE) / (small / GROWTH_FROM_SIZE)

    ran_growth = ran_target and GROWTH_FROM_SIZE in results

    def met(value: float | None, ok: bool, ran: bool) -> bool | None:
        # A build that failed at a size that was run misses the target; a size not run
        # leaves it unmeasured.
        if value is None:
            return False if ran else None
        return ok

    return {
        "time_ratio_at_1m": {
            "value": time_ratio,
            "target": f"<= {TARGET_TIME_RATIO:g}",
            "met": met(
                time_ratio, time_ratio is not None and time_ratio <= TARGET_TIME_RATIO, ran_target
            ),
        },
        "peak_rss_at_1m_bytes": {
            "value": peak_bytes,
            "target": f"< {TARGET_PEAK_RSS_BYTES:.0e}",
            "met": met(
                peak_bytes,
                peak_bytes is not None and peak_bytes < TARGET_PEAK_RSS_BYTES,
                ran_target,
            ),
        },
        "growth_per_row_1m_vs_200k": {
            "value": growth("kaizen"),
            "baseline_value": growth("baseline"),
            "target": f"<= {TARGET_GROWTH_RATIO:g}",
            "met": met(
                growth("kaizen"),
                (growth("kaizen") or 0.0) <= TARGET_GROWTH_RATIO,
                ran_growth,
            ),
        },
    }


def _print_targets(targets: dict[str, dict[str, Any]]) -> None:
    def verdict(met: bool | None) -> str:
        return {True: "met", False: "MISSED", None: "not measured"}[met]

    time_ratio = targets["time_ratio_at_1m"]
    peak = targets["peak_rss_at_1m_bytes"]
    growth = targets["growth_per_row_1m_vs_200k"]
    ratio_text = "-" if time_ratio["value"] is None else f"{time_ratio['value']:.2f}"
    peak_text = "-" if peak["value"] is None else f"{peak['value'] / 1e9:.2f} GB"
    growth_text = "-" if growth["value"] is None else f"{growth['value']:.2f}"
    base_text = "-" if growth["baseline_value"] is None else f"{growth['baseline_value']:.2f}"
    print(
        f"target time    kaizen/baseline at 1M rows {ratio_text} "
        f"(target <= {TARGET_TIME_RATIO:g}, {verdict(time_ratio['met'])})"
    )
    print(
        f"target memory  kaizen peak RSS at 1M rows {peak_text} "
        f"(target < {TARGET_PEAK_RSS_BYTES / 1e9:g} GB, {verdict(peak['met'])})"
    )
    print(
        f"target growth  kaizen cost per row 1M / 200k {growth_text} "
        f"(target <= {TARGET_GROWTH_RATIO:g}, {verdict(growth['met'])}; baseline {base_text})"
    )


if __name__ == "__main__":
    sys.exit(main())
