"""Deterministic synthetic card transactions with real, learnable fraud signal.

The generator draws a fixed population (customers with their own typical spend and
activity, merchants with a popularity and a minority of *risky* merchants), then two
kinds of activity on top of it:

* legitimate sessions: mostly single purchases in the daytime near the customer's
  typical amount, with a few shopping sprees (several purchases within an hour) and a few
  large purchases, so that no single fraud signal is free of false positives;
* fraud episodes: an episode may be a burst (several transactions by the same customer
  within an hour) and may happen at night; each of its transactions may use an amount far
  above the customer's usual spend and may go to a risky merchant.

The four signals are drawn independently, so each one alone separates fraud only partly
(ROC-AUC around 0.75-0.85), while a model that combines them separates it well (around
0.97). The features the platform computes from strictly earlier data (windowed customer
aggregates, amount over the customer's 7-day mean, hour of day, merchant past fraud rate
from labels already known) see exactly these signals; tests/unit/data/test_generator.py
checks both claims.

``drift`` moves the world: legitimate amounts grow and spread, more legitimate spending
happens late in the evening and at night, and fraud adapts (fewer night-time episodes,
smaller amount multipliers, and part of the risky merchants are replaced by merchants
that looked clean before). It applies to the whole generated frame, so a frame made with
``drift > 0`` compared with one made with ``drift=0`` (same seed) shows the shift, while
the population (customers, merchants, typical amounts) stays the same.
"""

from __future__ import annotations

import hashlib
from dataclasses import astuple, dataclass

import numpy as np
import pandas as pd

from kaizen.data.columns import (
    AMOUNT,
    CUSTOMER_ID,
    EVENT_TIMESTAMP,
    LABEL,
    LABEL_TIMESTAMP,
    MERCHANT_ID,
    RAW_COLUMNS,
    TRANSACTION_ID,
)

_SECONDS_PER_HOUR = 3_600
_SECONDS_PER_DAY = 86_400

# Legitimate spending by hour of day (relative weights): quiet nights, busy afternoons
# and early evenings.
_DAY_HOUR_WEIGHTS = np.array(
    [
        [0.5, 0.35, 0.25, 0.25, 0.35, 0.8, 1.5, 3.0, 4.5, 5.0, 5.5, 6.5],  # hours 0-11
        [7.0, 6.5, 6.0, 6.0, 6.5, 7.0, 7.5, 7.5, 6.5, 5.0, 3.5, 1.8],  # hours 12-23
    ]
).ravel()
# Where drifted legitimate spending moves to: late evenings and nights.
_LATE_HOUR_WEIGHTS = np.array(
    [
        [4.0, 3.5, 3.0, 2.5, 2.0, 1.5, 1.0, 1.0, 1.5, 2.0, 2.5, 3.0],
        [3.0, 3.0, 3.0, 3.0, 3.5, 4.0, 5.0, 6.0, 6.5, 6.5, 6.0, 5.0],
    ]
).ravel()
_NIGHT_HOURS = 5  # fraud "night" episodes start in hours 0..4

# Population.
_TYPICAL_AMOUNT_MEDIAN = 35.0
_TYPICAL_AMOUNT_SIGMA = 0.8  # spread of typical spend between customers (log scale)
_ACTIVITY_SHAPE = 4.0  # gamma shape of how active customers are (higher: more even)
_RISKY_MERCHANT_SHARE = 0.12
# Risky merchants get this share of legitimate traffic whatever their popularity, so
# merchant risk is a partial signal for every seed, never a perfect one.
_RISKY_MERCHANT_LEGIT_TRAFFIC = 0.10

# Legitimate activity.
_LEGIT_AMOUNT_SIGMA = 0.4  # spread around the customer's own typical amount (log scale)
_LEGIT_BIG_PURCHASE_PROB = 0.02
_LEGIT_BIG_PURCHASE_LOG_MULT = np.log(4.0)
_LEGIT_SPREE_PROB = 0.03  # share of sessions that are sprees of 2-3 purchases
_LEGIT_SPREE_GAP_MINUTES = 12.0

# Fraud: burst and night are drawn per episode, amount and merchant per transaction.
_FRAUD_BURST_PROB = 0.6
_FRAUD_BURST_SIZES = (2, 5)  # inclusive range of transactions in a burst
_FRAUD_BURST_GAP_MINUTES = 7.0
_FRAUD_NIGHT_PROB = 0.5
_FRAUD_HIGH_AMOUNT_PROB = 0.72
_FRAUD_HIGH_AMOUNT_LOG_MULT = np.log(6.0)
_FRAUD_HIGH_AMOUNT_SIGMA = 0.5
_FRAUD_RISKY_MERCHANT_PROB = 0.65

# Labels arrive after review or chargeback: between one hour and two days later.
_LABEL_DELAY_HOURS = (1.0, 48.0)


@dataclass(frozen=True)
class GeneratorConfig:
    """Parameters of the synthetic transaction generator.

    Attributes:
        seed: Seed of every random draw; the same config always yields the same frame.
        rows: Number of transactions.
        customers: Number of customers (ids ``C0001``...).
        merchants: Number of merchants (ids ``M001``...).
        days: Length of the generated period in days.
        fraud_rate: Share of fraudulent transactions (the label base rate).
        drift: Strength of injected drift, 0 (none) to 1 (strong): amounts, hour-of-day
            mix and fraud patterns move (see the module docstring).
        start: First day of the period, an ISO date or timestamp; naive values are UTC.
    """

    seed: int = 42
    rows: int = 20_000
    customers: int = 400
    merchants: int = 80
    days: int = 35
    fraud_rate: float = 0.02
    drift: float = 0.0
    start: str = "2026-01-01"

    def __post_init__(self) -> None:
        for name, minimum in (
            ("seed", 0),
            ("rows", 1),
            ("customers", 1),
            ("merchants", 1),
            ("days", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | np.integer):
                raise ValueError(
                    f"GeneratorConfig.{name} must be an integer, got {value!r} "
                    f"({type(value).__name__})"
                )
            if value < minimum:
                raise ValueError(f"GeneratorConfig.{name} must be >= {minimum}, got {value}")
        for name, low, high in (("fraud_rate", 0.0, 0.5), ("drift", 0.0, 1.0)):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
                raise ValueError(f"GeneratorConfig.{name} must be a number, got {value!r}")
            if not low <= float(value) <= high:
                raise ValueError(
                    f"GeneratorConfig.{name} must be between {low} and {high}, got {value}"
                )
        try:
            self.start_timestamp  # noqa: B018 - parse once so a bad start fails here
        except (TypeError, ValueError) as exc:
            raise ValueError(
                f"GeneratorConfig.start must be an ISO date or timestamp such as "
                f"'2026-01-01', got {self.start!r}"
            ) from exc

    @property
    def start_timestamp(self) -> pd.Timestamp:
        """The start of the period as a UTC timestamp (naive values are taken as UTC)."""
        if not isinstance(self.start, str) or not self.start.strip():
            raise ValueError(f"not a date: {self.start!r}")
        ts = pd.Timestamp(self.start)
        if ts is pd.NaT:
            raise ValueError(f"not a date: {self.start!r}")
        return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dataclass(frozen=True)
class _Population:
    typical_amount: np.ndarray  # per customer
    activity: np.ndarray  # per customer, sums to 1
    popularity: np.ndarray  # per merchant, sums to 1
    risky_merchants: np.ndarray  # merchant indices that attract fraud


@dataclass(frozen=True)
class _Transactions:
    customer: np.ndarray
    merchant: np.ndarray
    amount: np.ndarray
    second: np.ndarray  # seconds since the start of the period
    is_fraud: np.ndarray


def generate_transactions(config: GeneratorConfig | None = None) -> pd.DataFrame:
    """Generate a deterministic frame of card transactions.

    Args:
        config: Generator parameters; defaults to ``GeneratorConfig()``.

    Returns:
        A frame with exactly ``RAW_COLUMNS``: ``transaction_id`` (str, unique),
        ``customer_id`` (str), ``merchant_id`` (str), ``amount`` (float64, > 0, cents),
        ``event_timestamp`` (datetime64[ns, UTC]), ``is_fraud`` (int64, 0/1) and
        ``label_timestamp`` (datetime64[ns, UTC], one hour to two days after the event),
        sorted by ``event_timestamp`` with a fresh ``RangeIndex``.
    """
    config = config or GeneratorConfig()
    # Independent streams, so that changing drift or the fraud rate does not reshuffle
    # the population: the same seed keeps the same customers and merchants.
    population_rng, legit_rng, fraud_rng, label_rng = (
        np.random.default_rng(child) for child in np.random.SeedSequence(config.seed).spawn(4)
    )
    population = _draw_population(config, population_rng)
    n_fraud = round(config.rows * config.fraud_rate)
    legit = _legit_transactions(config, population, config.rows - n_fraud, legit_rng)
    fraud = _fraud_transactions(config, population, n_fraud, fraud_rng)

    customer = np.concatenate([legit.customer, fraud.customer])
    merchant = np.concatenate([legit.merchant, fraud.merchant])
    amount = np.concatenate([legit.amount, fraud.amount])
    second = np.concatenate([legit.second, fraud.second])
    is_fraud = np.concatenate([legit.is_fraud, fraud.is_fraud])
    low, high = _LABEL_DELAY_HOURS
    delay = np.round(label_rng.uniform(low, high, size=len(second)) * _SECONDS_PER_HOUR)

    order = np.argsort(second, kind="stable")
    start_ns = config.start_timestamp.value
    event_ns = start_ns + second[order].astype(np.int64) * 1_000_000_000
    label_ns = event_ns + delay[order].astype(np.int64) * 1_000_000_000
    customer_width = max(4, len(str(config.customers)))
    merchant_width = max(3, len(str(config.merchants)))
    id_width = max(6, len(str(config.rows)))
    prefix = _batch_prefix(config)

    frame = pd.DataFrame(
        {
            TRANSACTION_ID: [f"{prefix}-{i:0{id_width}d}" for i in range(1, len(order) + 1)],
            CUSTOMER_ID: [f"C{c + 1:0{customer_width}d}" for c in customer[order]],
            MERCHANT_ID: [f"M{m + 1:0{merchant_width}d}" for m in merchant[order]],
            AMOUNT: amount[order].astype(np.float64),
            EVENT_TIMESTAMP: pd.to_datetime(event_ns, utc=True),
            LABEL: is_fraud[order].astype(np.int64),
            LABEL_TIMESTAMP: pd.to_datetime(label_ns, utc=True),
        },
        columns=list(RAW_COLUMNS),
    )
    return frame


def _batch_prefix(config: GeneratorConfig) -> str:
    """A short tag of the config, so batches made with different configs never share ids."""
    # str() of each field, so numpy and Python numbers of equal value give one tag.
    fields = "|".join(str(value) for value in astuple(config))
    digest = hashlib.sha256(fields.encode()).hexdigest()[:8]
    return f"T{digest}"


def _draw_population(config: GeneratorConfig, rng: np.random.Generator) -> _Population:
    typical_amount = np.exp(
        rng.normal(np.log(_TYPICAL_AMOUNT_MEDIAN), _TYPICAL_AMOUNT_SIGMA, config.customers)
    )
    activity = rng.gamma(_ACTIVITY_SHAPE, 1.0, config.customers)
    popularity = rng.gamma(1.5, 1.0, config.merchants)
    n_risky = max(1, round(config.merchants * _RISKY_MERCHANT_SHARE))
    shuffled = rng.permutation(config.merchants)
    risky = shuffled[:n_risky].copy()
    # Drift hands part of the fraud to merchants that were clean so far; the
    # replacements are drawn regardless of drift to keep the stream identical.
    replacements = shuffled[n_risky : 2 * n_risky]
    n_moved = min(round(config.drift * n_risky), len(replacements))
    risky[:n_moved] = replacements[:n_moved]
    if n_risky < config.merchants:
        is_risky = np.zeros(config.merchants, dtype=bool)
        is_risky[risky] = True
        popularity[is_risky] *= _RISKY_MERCHANT_LEGIT_TRAFFIC / popularity[is_risky].sum()
        popularity[~is_risky] *= (1.0 - _RISKY_MERCHANT_LEGIT_TRAFFIC) / popularity[~is_risky].sum()
    return _Population(
        typical_amount=typical_amount,
        activity=activity / activity.sum(),
        popularity=popularity / popularity.sum(),
        risky_merchants=risky,
    )


def _legit_hour_weights(drift: float) -> np.ndarray:
    weights = (1.0 - drift) * _DAY_HOUR_WEIGHTS / _DAY_HOUR_WEIGHTS.sum()
    weights = weights + drift * _LATE_HOUR_WEIGHTS / _LATE_HOUR_WEIGHTS.sum()
    return weights / weights.sum()


def _session_sizes(
    n_transactions: int,
    group_prob: float,
    group_sizes: tuple[int, int],
    rng: np.random.Generator,
) -> np.ndarray:
    """Split ``n_transactions`` into sessions of 1 or ``group_sizes`` transactions."""
    if n_transactions == 0:
        return np.zeros(0, dtype=np.int64)
    grouped = rng.random(n_transactions) < group_prob
    sizes = np.where(grouped, rng.integers(group_sizes[0], group_sizes[1] + 1, n_transactions), 1)
    cumulative = np.cumsum(sizes)
    n_sessions = int(np.searchsorted(cumulative, n_transactions) + 1)
    sizes = sizes[:n_sessions].copy()
    sizes[-1] -= int(cumulative[n_sessions - 1]) - n_transactions
    return sizes.astype(np.int64)


def _session_seconds(
    sizes: np.ndarray,
    start_second: np.ndarray,
    gap_minutes: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """Times of each session's transactions: the start, then gaps, all within the hour."""
    n = int(sizes.sum())
    if n == 0:
        return np.zeros(0)
    session_of = np.repeat(np.arange(len(sizes)), sizes)
    first_of_session = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    is_first = np.zeros(n, dtype=bool)
    is_first[first_of_session] = True
    gaps = np.where(is_first, 0.0, rng.exponential(gap_minutes * 60.0, n) + 30.0)
    offsets = np.cumsum(gaps)
    offsets -= np.repeat(offsets[first_of_session], sizes)
    # Keep a session within the hour, so a burst is a burst in the 1-hour window.
    offsets = np.minimum(offsets, _SECONDS_PER_HOUR - 60.0)
    return np.round(start_second[session_of] + offsets)


def _session_starts(
    n_sessions: int,
    days: int,
    hour_weights: np.ndarray,
    rng: np.random.Generator,
) -> np.ndarray:
    day = rng.integers(0, days, n_sessions)
    hour = rng.choice(24, size=n_sessions, p=hour_weights)
    within_hour = rng.uniform(0, _SECONDS_PER_HOUR, n_sessions)
    start = day * _SECONDS_PER_DAY + hour * _SECONDS_PER_HOUR + within_hour
    # Sessions that would spill past the period end start an hour earlier instead.
    period_end = days * _SECONDS_PER_DAY
    return np.where(start > period_end - _SECONDS_PER_HOUR, start - _SECONDS_PER_HOUR, start)


def _to_cents(amount: np.ndarray) -> np.ndarray:
    return np.maximum(np.round(amount, 2), 0.01)


def _legit_transactions(
    config: GeneratorConfig, population: _Population, n: int, rng: np.random.Generator
) -> _Transactions:
    sizes = _session_sizes(n, _LEGIT_SPREE_PROB, (2, 3), rng)
    n_sessions = len(sizes)
    session_customer = rng.choice(config.customers, size=n_sessions, p=population.activity)
    starts = _session_starts(n_sessions, config.days, _legit_hour_weights(config.drift), rng)
    second = _session_seconds(sizes, starts, _LEGIT_SPREE_GAP_MINUTES, rng)
    customer = np.repeat(session_customer, sizes)
    merchant = rng.choice(config.merchants, size=n, p=population.popularity)
    sigma = _LEGIT_AMOUNT_SIGMA + 0.2 * config.drift
    log_mult = rng.normal(0.0, sigma, n)
    big = rng.random(n) < _LEGIT_BIG_PURCHASE_PROB
    log_mult = log_mult + np.where(big, rng.normal(_LEGIT_BIG_PURCHASE_LOG_MULT, 0.4, n), 0.0)
    scale = 1.0 + 0.8 * config.drift  # drift: prices and baskets grow
    amount = population.typical_amount[customer] * scale * np.exp(log_mult)
    return _Transactions(
        customer=customer,
        merchant=merchant,
        amount=_to_cents(amount),
        second=second,
        is_fraud=np.zeros(n, dtype=np.int64),
    )


def _fraud_transactions(
    config: GeneratorConfig, population: _Population, n: int, rng: np.random.Generator
) -> _Transactions:
    sizes = _session_sizes(n, _FRAUD_BURST_PROB, _FRAUD_BURST_SIZES, rng)
    n_episodes = len(sizes)
    drift = config.drift
    episode_customer = rng.choice(config.customers, size=n_episodes, p=population.activity)

    # Drift: fraudsters adapt and move away from the patterns a model has learned.
    night = rng.random(n_episodes) < _FRAUD_NIGHT_PROB * (1.0 - 0.6 * drift)

    night_weights = np.zeros(24)
    night_weights[:_NIGHT_HOURS] = 1.0 / _NIGHT_HOURS
    night_starts = _session_starts(n_episodes, config.days, night_weights, rng)
    day_starts = _session_starts(n_episodes, config.days, _legit_hour_weights(drift), rng)
    starts = np.where(night, night_starts, day_starts)
    second = _session_seconds(sizes, starts, _FRAUD_BURST_GAP_MINUTES, rng)

    customer = np.repeat(episode_customer, sizes)
    # Amount and merchant signals are drawn per transaction: a burst mixes big and
    # ordinary amounts, risky and ordinary merchants.
    txn_high = rng.random(n) < _FRAUD_HIGH_AMOUNT_PROB * (1.0 - 0.3 * drift)
    txn_risky = rng.random(n) < _FRAUD_RISKY_MERCHANT_PROB
    # Within the risky set, fraud follows legitimate traffic, so every risky merchant
    # shows about the same fraud rate rather than a few standing out perfectly.
    risky_weights = population.popularity[population.risky_merchants]
    risky_pick = rng.choice(
        population.risky_merchants, size=n, p=risky_weights / risky_weights.sum()
    )
    any_pick = rng.choice(config.merchants, size=n, p=population.popularity)
    merchant = np.where(txn_risky, risky_pick, any_pick)

    high_log_mult = rng.normal(
        _FRAUD_HIGH_AMOUNT_LOG_MULT * (1.0 - 0.5 * drift), _FRAUD_HIGH_AMOUNT_SIGMA, n
    )
    usual_log_mult = rng.normal(0.0, _LEGIT_AMOUNT_SIGMA + 0.2 * drift, n)
    log_mult = np.where(txn_high, high_log_mult, usual_log_mult)
    scale = 1.0 + 0.8 * drift
    amount = population.typical_amount[customer] * scale * np.exp(log_mult)
    return _Transactions(
        customer=customer,
        merchant=merchant,
        amount=_to_cents(amount),
        second=second,
        is_fraud=np.ones(n, dtype=np.int64),
    )
