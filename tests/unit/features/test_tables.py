"""compute_feature_tables on hand-made transactions with hand-computed expected values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from kaizen.data.columns import RAW_COLUMNS
from kaizen.features import (
    FEATURE_AVAILABILITY_DELAY,
    compute_feature_tables,
    write_feature_sources,
)
from kaizen.features.tables import CUSTOMER_FEATURE_COLUMNS, MERCHANT_FEATURE_COLUMNS

DAY0 = pd.Timestamp("2026-03-01", tz="UTC")


def at(offset: str) -> pd.Timestamp:
    return DAY0 + pd.Timedelta(offset)


def transactions(rows: list[tuple]) -> pd.DataFrame:
    """Rows of (customer, merchant, amount, event offset, is_fraud, label offset)."""
    return pd.DataFrame(
        {
            "transaction_id": [f"T{i:03d}" for i in range(len(rows))],
            "customer_id": [row[0] for row in rows],
            "merchant_id": [row[1] for row in rows],
            "amount": [float(row[2]) for row in rows],
            "event_timestamp": pd.to_datetime([at(row[3]) for row in rows], utc=True),
            "is_fraud": [row[4] for row in rows],
            "label_timestamp": pd.to_datetime([at(row[5]) for row in rows], utc=True),
        }
    )[list(RAW_COLUMNS)]


def customer_row(tables, customer: str, stamp: pd.Timestamp) -> pd.Series:
    frame = tables.customer_stats
    match = frame[(frame.customer_id == customer) & (frame.event_timestamp == stamp)]
    assert len(match) == 1, f"expected one row for {customer} at {stamp}, got {len(match)}"
    return match.iloc[0]


def merchant_row(tables, merchant: str, stamp: pd.Timestamp) -> pd.Series:
    frame = tables.merchant_stats
    match = frame[(frame.merchant_id == merchant) & (frame.event_timestamp == stamp)]
    assert len(match) == 1, f"expected one row for {merchant} at {stamp}, got {len(match)}"
    return match.iloc[0]


# Customer C1: a spree in the evening of day 0, one more purchase on day 1, one 8 days later.
C1 = [
    ("C1", "M1", 10, "10h", 0, "11h"),
    ("C1", "M1", 20, "10h30min", 0, "12h"),
    ("C1", "M2", 40, "11h", 0, "12h"),  # exactly 1h after the first: outside its 1h window
    ("C1", "M2", 70, "1D 09h", 0, "2D"),
    ("C1", "M1", 5, "9D", 0, "9D 01h"),
]


def test_customer_windows_hold_only_earlier_transactions_of_that_customer() -> None:
    other = [("C2", "M1", 999, "10h45min", 0, "11h")]
    tables = compute_feature_tables(transactions(C1 + other))

    first = customer_row(tables, "C1", at("10h"))
    assert first.txn_count_1h == 0 and first.txn_count_7d == 0
    assert first.txn_amount_sum_7d == 0.0 and first.txn_amount_mean_7d == 0.0

    third = customer_row(tables, "C1", at("11h"))
    # (11h - 1h, 11h) is open: the 10:00 purchase is out, 10:30 is in; C2's 999 never is.
    assert third.txn_count_1h == 1
    assert third.txn_amount_sum_1h == pytest.approx(20.0)
    assert third.txn_count_24h == 2
    assert third.txn_amount_mean_24h == pytest.approx(15.0)

    fourth = customer_row(tables, "C1", at("1D 09h"))
    assert fourth.txn_count_1h == 0
    assert fourth.txn_count_24h == 3  # 23h, 22.5h and 22h earlier
    assert fourth.txn_amount_sum_24h == pytest.approx(70.0)
    assert fourth.txn_amount_mean_7d == pytest.approx(70.0 / 3)

    fifth = customer_row(tables, "C1", at("9D"))
    # On day 9 every earlier purchase is more than 7 days old, the day-1 one by 15 hours.
    assert fifth.txn_count_7d == 0
    assert fifth.txn_amount_mean_7d == 0.0


def test_transactions_at_the_same_instant_do_not_see_each_other() -> None:
    tables = compute_feature_tables(
        transactions(
            [
                ("C1", "M1", 10, "10h", 0, "11h"),
                ("C1", "M2", 30, "10h", 0, "11h"),
                ("C1", "M1", 50, "10h20min", 0, "11h"),
            ]
        )
    )
    assert (tables.customer_stats.event_timestamp == at("10h")).sum() == 1
    assert customer_row(tables, "C1", at("10h")).txn_count_1h == 0
    later = customer_row(tables, "C1", at("10h20min"))
    assert later.txn_count_1h == 2
    assert later.txn_amount_sum_1h == pytest.approx(40.0)


def test_final_customer_row_includes_the_last_transaction_and_is_stamped_after_as_of() -> None:
    tables = compute_feature_tables(transactions(C1))
    as_of = at("9D 01h")  # the latest label time
    assert tables.as_of == as_of
    final = customer_row(tables, "C1", as_of + FEATURE_AVAILABILITY_DELAY)
    assert final.txn_count_1h == 0  # the 5.0 purchase was an hour before as_of
    assert final.txn_count_24h == 1
    assert final.txn_amount_sum_7d == pytest.approx(5.0)
    assert tables.customer_stats.event_timestamp.max() == tables.materialize_until


def test_rows_stop_at_an_explicit_as_of_and_ignore_later_transactions() -> None:
    tables = compute_feature_tables(transactions(C1), as_of=at("1D 12h"))
    assert tables.customer_stats.event_timestamp.max() == at("1D 12h") + FEATURE_AVAILABILITY_DELAY
    final = customer_row(tables, "C1", at("1D 12h") + FEATURE_AVAILABILITY_DELAY)
    assert final.txn_count_7d == 4  # the day-9 purchase has not happened yet
    assert tables.merchant_stats.event_timestamp.max() == at("1D")


# Merchant M1: a fraud on day 0 labelled on day 2 10:00, a legitimate sale labelled on day 1.
MERCHANT = [
    ("C1", "M1", 100, "0D 20h", 1, "2D 10h"),
    ("C2", "M1", 50, "0D 21h", 0, "1D 06h"),
    ("C3", "M1", 30, "2D 09h", 0, "3D"),
    ("C4", "M1", 20, "3D 12h", 0, "3D 13h"),
]


def merchant_stamps(tables, merchant: str) -> list[pd.Timestamp]:
    frame = tables.merchant_stats
    return list(frame[frame.merchant_id == merchant].event_timestamp)


def test_merchant_rows_use_only_labels_known_before_the_snapshot() -> None:
    # A sale on day 1 gives M1 a day-1 snapshot (the one that sale joins); its label comes
    # after the day-3 snapshot, so it adds to the transaction counts only.
    day1_sale = ("C5", "M1", 15, "1D 08h", 0, "3D 12h")
    tables = compute_feature_tables(transactions([*MERCHANT, day1_sale]))
    # The first row, then the midnights of days 1, 2 and 3 (each has a transaction; day 3 is
    # also as_of's day). Day 0's midnight is before the first transaction: no row.
    assert merchant_stamps(tables, "M1") == [at("0D 20h"), at("1D"), at("2D"), at("3D")]

    first = merchant_row(tables, "M1", at("0D 20h"))  # the first transaction's own time
    assert (first.txn_count_30d, first.label_count_30d, first.fraud_rate_30d) == (0, 0, 0.0)

    day1 = merchant_row(tables, "M1", at("1D"))
    # Day 0's two sales; the first label (day 1 06:00) comes after this snapshot.
    assert (day1.txn_count_30d, day1.label_count_30d) == (2, 0)

    day2 = merchant_row(tables, "M1", at("2D"))
    # Day 0's two sales and the day-1 sale. The legitimate label (day 1 06:00) is known; the
    # fraud label (day 2 10:00) is not yet.
    assert (day2.txn_count_30d, day2.label_count_30d, day2.fraud_rate_30d) == (3, 1, 0.0)

    day3 = merchant_row(tables, "M1", at("3D"))
    # Four sales (day 0 twice, day 1, day 2 09:00); labels of day 1 06:00 and day 2 10:00.
    # The third label arrives exactly at day 3 00:00: not strictly before the snapshot.
    assert (day3.txn_count_30d, day3.label_count_30d) == (4, 2)
    assert day3.fraud_rate_30d == pytest.approx(0.5)


def test_merchant_labels_leave_the_window_thirty_days_after_they_arrived() -> None:
    # A sale on day 32 (labelled on day 33 06:00, after every snapshot read here) gives M1 a
    # day-32 snapshot; the sale on day 33 gives it the day-33 one.
    rows = [
        *MERCHANT,
        ("C6", "M1", 25, "32D 12h", 0, "33D 06h"),
        ("C5", "M1", 10, "33D", 0, "33D 01h"),
    ]
    tables = compute_feature_tables(transactions(rows))
    # Nothing between day 3 and day 32: no snapshot on those days any more.
    assert merchant_stamps(tables, "M1") == [
        at("0D 20h"),
        at("2D"),
        at("3D"),
        at("32D"),
        at("33D"),
    ]
    # Day 32: labels from day 2 10:00 on are within 30 days (day 2 10:00 fraud, day 3 00:00,
    # day 3 13:00); day 1 06:00 left at day 31 06:00.
    day32 = merchant_row(tables, "M1", at("32D"))
    assert day32.label_count_30d == 3
    assert day32.fraud_rate_30d == pytest.approx(1 / 3)
    assert day32.txn_count_30d == 2  # day 2 09:00 and day 3 12:00; day 0's sales are too old
    day33 = merchant_row(tables, "M1", at("33D"))
    # (day 3, day 33) is open: the label that arrived at exactly day 3 00:00 is out, the fraud
    # label left at day 32 10:00; only day 3 13:00 remains (day 33's labels come after it).
    assert (day33.label_count_30d, day33.fraud_rate_30d) == (1, 0.0)
    # Day 3 12:00 and day 32 12:00; day 2 09:00 left at day 32 09:00.
    assert day33.txn_count_30d == 2


def test_tables_match_a_brute_force_recount_on_random_data() -> None:
    rng = np.random.default_rng(7)
    n = 400
    events = DAY0 + pd.to_timedelta(np.sort(rng.integers(0, 20 * 86_400, n)), unit="s")
    frame = pd.DataFrame(
        {
            "transaction_id": [f"T{i}" for i in range(n)],
            "customer_id": rng.choice(["A", "B", "C", "D"], n),
            "merchant_id": rng.choice(["X", "Y", "Z"], n),
            "amount": rng.uniform(1, 100, n).round(2),
            "event_timestamp": events,
            "is_fraud": rng.integers(0, 2, n),
            "label_timestamp": events + pd.to_timedelta(rng.integers(0, 3 * 86_400, n), unit="s"),
        }
    )
    tables = compute_feature_tables(frame)
    windows = {"1h": pd.Timedelta(hours=1), "24h": pd.Timedelta(days=1), "7d": pd.Timedelta(days=7)}
    for row in tables.customer_stats.itertuples():
        own = frame[frame.customer_id == row.customer_id]
        for name, length in windows.items():
            inside = own[
                (own.event_timestamp > row.event_timestamp - length)
                & (own.event_timestamp < row.event_timestamp)
            ]
            assert getattr(row, f"txn_count_{name}") == len(inside)
            assert getattr(row, f"txn_amount_sum_{name}") == pytest.approx(inside.amount.sum())
    month = pd.Timedelta(days=30)
    for row in tables.merchant_stats.itertuples():
        own = frame[frame.merchant_id == row.merchant_id]
        labels = own[
            (own.label_timestamp > row.event_timestamp - month)
            & (own.label_timestamp < row.event_timestamp)
        ]
        assert row.label_count_30d == len(labels)
        expected_rate = labels.is_fraud.mean() if len(labels) else 0.0
        assert row.fraud_rate_30d == pytest.approx(expected_rate)


def test_every_transaction_joins_the_daily_snapshot_of_its_own_day() -> None:
    """Feast's as-of join on the sparse merchant rows gives what the old daily table gave.

    The old table had a 00:00 UTC snapshot for every day from a merchant's first transaction
    on. A transaction joined the snapshot at the midnight starting its own day, or the first
    (all-zero) row on the merchant's first day; the online store served the snapshot of
    as_of's day. Merchants idle for more than the 30-day TTL check that no older row leaks in.
    """
    rng = np.random.default_rng(2026)
    # Bursts of activity per merchant: (first day, end day, transactions).
    bursts = {
        "A": [(0, 40, 90)],
        "B": [(0, 4, 30), (37, 40, 30)],  # idle for more than 33 days
        "C": [(0, 2, 20), (35, 40, 40)],  # idle for more than 33 days
        "D": [(20, 40, 60)],
        "E": [(0, 5, 30)],  # idle from day 5 to the end
    }
    merchants: list[str] = []
    parts: list[np.ndarray] = []
    for merchant, ranges in bursts.items():
        for start, end, count in ranges:
            seconds = rng.integers(start * 86_400, end * 86_400, count)
            seconds[1::10] = seconds[0::10][: len(seconds[1::10])]  # some at the same instant
            merchants += [merchant] * count
            parts.append(seconds)
    event_s = np.concatenate(parts)
    n = len(event_s)
    at_midnight = rng.random(n) < 0.08  # some exactly at 00:00, where a snapshot is stamped
    event_s[at_midnight] -= event_s[at_midnight] % 86_400
    delay_s = rng.integers(0, 3 * 86_400, n)
    delay_s[rng.random(n) < 0.1] = 0
    event_ts = DAY0 + pd.to_timedelta(event_s, unit="s")
    frame = pd.DataFrame(
        {
            "transaction_id": [f"T{i}" for i in range(n)],
            "customer_id": rng.choice(["P", "Q", "R"], n),
            "merchant_id": merchants,
            "amount": rng.uniform(1, 100, n).round(2),
            "event_timestamp": event_ts,
            "is_fraud": rng.integers(0, 2, n),
            "label_timestamp": event_ts + pd.to_timedelta(delay_s, unit="s"),
        }
    )
    # F's only transaction is at as_of itself: its first row is on as_of's day.
    last = frame.label_timestamp.max()
    frame.loc[n] = ["T_last", "P", "F", 10.0, last, 1, last]
    assert 200 <= len(frame) <= 600
    tables = compute_feature_tables(frame)
    assert tables.as_of == last
    month = pd.Timedelta(days=30)
    first = frame.groupby("merchant_id").event_timestamp.min()
    by_merchant = {
        merchant: rows.sort_values("event_timestamp")
        for merchant, rows in tables.merchant_stats.groupby("merchant_id")
    }
    assert sorted(by_merchant) == ["A", "B", "C", "D", "E", "F"]

    def joined(merchant: str, when: pd.Timestamp) -> tuple[pd.Timestamp | None, tuple]:
        """Feast's point-in-time join: the latest row at or before ``when``, within the TTL."""
        rows = by_merchant[merchant]
        rows = rows[(rows.event_timestamp <= when) & (rows.event_timestamp >= when - month)]
        if rows.empty:
            return None, (0, 0, 0.0)
        row = rows.iloc[-1]
        return row.event_timestamp, (row.txn_count_30d, row.label_count_30d, row.fraud_rate_30d)

    def snapshot(merchant: str, when: pd.Timestamp) -> tuple[pd.Timestamp, tuple]:
        """The old daily table's row for ``when``, recounted from the raw transactions."""
        midnight = when.floor("D")
        if midnight <= first[merchant]:
            return first[merchant], (0, 0, 0.0)
        own = frame[frame.merchant_id == merchant]
        txns = own[(own.event_timestamp > midnight - month) & (own.event_timestamp < midnight)]
        labels = own[(own.label_timestamp > midnight - month) & (own.label_timestamp < midnight)]
        rate = labels.is_fraud.mean() if len(labels) else 0.0
        return midnight, (len(txns), len(labels), rate)

    def check(merchant: str, when: pd.Timestamp) -> None:
        stamp, (txn_count, label_count, rate) = joined(merchant, when)
        expected_stamp, (expected_txns, expected_labels, expected_rate) = snapshot(merchant, when)
        assert stamp == expected_stamp, f"{merchant} at {when}"
        assert (txn_count, label_count) == (expected_txns, expected_labels), f"{merchant} {when}"
        assert rate == pytest.approx(expected_rate, rel=1e-9), f"{merchant} at {when}"

    for transaction in frame.itertuples():
        check(transaction.merchant_id, transaction.event_timestamp)
    # The online value: what each merchant's latest row says at as_of.
    for merchant in by_merchant:
        check(merchant, tables.as_of)
    # The data covers what matters: idle gaps beyond the TTL and non-empty windows.
    assert (
        frame.groupby("merchant_id").event_timestamp.apply(lambda t: t.diff().max())
    ).max() > month
    assert (tables.merchant_stats.label_count_30d > 0).any()


def random_transactions(
    n: int, customers: int = 400, merchants: int = 80, days: int = 35
) -> pd.DataFrame:
    rng = np.random.default_rng(11)
    events = DAY0 + pd.to_timedelta(rng.integers(0, days * 86_400, n), unit="s")
    return pd.DataFrame(
        {
            "transaction_id": [f"T{i}" for i in range(n)],
            "customer_id": [f"C{i:04d}" for i in rng.integers(0, customers, n)],
            "merchant_id": [f"M{i:03d}" for i in rng.integers(0, merchants, n)],
            "amount": rng.uniform(1, 500, n),
            "event_timestamp": events,
            "is_fraud": rng.integers(0, 2, n),
            "label_timestamp": events + pd.Timedelta(hours=5),
        }
    )


def test_windows_are_computed_in_a_fixed_number_of_array_passes_whatever_the_size(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Vectorised: three passes over all rows at once, not a loop per row or entity.

    (How long 20,000 transactions take is a figure of ``benchmarks/data.py``.)
    """
    from kaizen.features import tables as module

    passes: list[tuple[int, int]] = []
    in_windows = module._WindowCounter.in_windows

    def counted(self: object, codes: np.ndarray, ends_ns: np.ndarray, lengths: list) -> object:
        passes.append((len(codes), len(lengths)))
        return in_windows(self, codes, ends_ns, lengths)  # type: ignore[arg-type]

    monkeypatch.setattr(module._WindowCounter, "in_windows", counted)
    for n in (2_000, 20_000):
        frame = random_transactions(n)
        passes.clear()

        tables = compute_feature_tables(frame)

        customer_rows, merchant_rows = len(tables.customer_stats), len(tables.merchant_stats)
        # The three customer windows in one pass, and the merchant's transactions and labels
        # (the two tables are computed side by side): each pass over every row of its table.
        assert sorted(passes) == sorted(
            [(customer_rows, 3), (merchant_rows, 1), (merchant_rows, 1)]
        )
        # Customer rows: one per distinct transaction time, plus the final row per customer.
        distinct = frame[["customer_id", "event_timestamp"]].drop_duplicates()
        assert customer_rows == len(distinct) + frame.customer_id.nunique()
        # Merchant rows: a first row per merchant, the midnight starting each day on which it
        # has a transaction, and the midnight starting as_of's day; midnights only when after
        # its first transaction. Neither one per transaction nor one per merchant and day.
        first = frame.groupby("merchant_id").event_timestamp.min()
        as_of_midnight = tables.as_of.floor("D")
        midnights = frame.event_timestamp.dt.floor("D")
        after_first = midnights > frame.merchant_id.map(first)
        expected = set(first.items())
        expected |= set(zip(frame.merchant_id[after_first], midnights[after_first], strict=True))
        expected |= {(m, as_of_midnight) for m, stamp in first.items() if stamp < as_of_midnight}
        assert merchant_rows == len(expected)
        merchant_keys = zip(
            tables.merchant_stats.merchant_id, tables.merchant_stats.event_timestamp, strict=True
        )
        assert set(merchant_keys) == expected
        assert list(tables.customer_stats.columns[2:]) == list(CUSTOMER_FEATURE_COLUMNS)
        assert list(tables.merchant_stats.columns[2:]) == list(MERCHANT_FEATURE_COLUMNS)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda f: f.drop(columns=["amount"]), r"missing column\(s\) \['amount'\]"),
        (
            lambda f: f.assign(event_timestamp=f.event_timestamp.dt.tz_localize(None)),
            "'event_timestamp' must hold timezone-aware UTC timestamps",
        ),
        (
            lambda f: f.assign(amount=[10.0, -1.0]),
            r"'amount' must be finite and > 0, got -1.0 at row 1 \(transaction_id='T001'\)",
        ),
        (lambda f: f.assign(is_fraud=[0, 2]), "'is_fraud' must be 0 or 1, got 2 at row 1"),
        (
            lambda f: f.assign(label_timestamp=f.event_timestamp - pd.Timedelta(minutes=1)),
            r"'label_timestamp' is before 'event_timestamp' in 2 row\(s\), "
            r"first at row 0 \(transaction_id='T000'\)",
        ),
        (lambda f: f.assign(transaction_id=["T1", "T1"]), "'T1' appears more than once"),
        (lambda f: f.assign(customer_id=["C1", None]), "'customer_id' has 1 missing value"),
        (lambda f: f.iloc[0:0], "the frame has no rows"),
    ],
)
def test_malformed_transactions_are_rejected_with_the_problem_named(change, message) -> None:
    good = transactions([("C1", "M1", 10, "1h", 0, "2h"), ("C1", "M1", 20, "3h", 1, "4h")])
    with pytest.raises(ValueError, match=message):
        compute_feature_tables(change(good))


def test_naive_as_of_is_rejected() -> None:
    with pytest.raises(ValueError, match="as_of must be timezone-aware"):
        compute_feature_tables(transactions(C1), as_of=pd.Timestamp("2026-03-02"))


def test_sources_are_written_whole_and_a_failed_write_keeps_the_previous_file(
    tmp_path: Path,
) -> None:
    tables = compute_feature_tables(transactions(C1 + MERCHANT))
    written = write_feature_sources(tables, tmp_path / "data")
    assert sorted(path.name for path in (tmp_path / "data").iterdir()) == [
        "customer_stats.parquet",
        "merchant_stats.parquet",
    ]
    pd.testing.assert_frame_equal(pd.read_parquet(written["customer_stats"]), tables.customer_stats)
    before = written["merchant_stats"].read_bytes()

    # A column pyarrow cannot store makes the customer write fail: neither file is replaced,
    # though the merchant one (a single row now) was written.
    broken = type(tables)(
        tables.customer_stats.assign(txn_count_1h=[object()] * len(tables.customer_stats)),
        tables.merchant_stats.iloc[:1],
        tables.as_of,
    )
    with pytest.raises(Exception, match="object"):
        write_feature_sources(broken, tmp_path / "data")
    assert written["merchant_stats"].read_bytes() == before
    pd.testing.assert_frame_equal(pd.read_parquet(written["customer_stats"]), tables.customer_stats)
    assert not [path for path in (tmp_path / "data").iterdir() if path.suffix == ".tmp"]
