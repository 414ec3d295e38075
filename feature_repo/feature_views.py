"""Feature views: customer spending windows, merchant risk, and the live transaction's context.

Every source row stamped ``t`` describes only what happened strictly before ``t``, and the
customer source has a row at each transaction's own time, so the row Feast joins to a
transaction never contains that transaction, and the online store (loaded with each
customer's row at the end of the data) holds what training would see for the next one.

TTLs equal the longest window of each view: a value older than that would describe windows
that have since emptied, so Feast treats it as missing and ``kaizen.features`` fills
missing stored values with 0 ("no activity"), as it does for a customer never seen before.
"""

from datetime import timedelta

import pandas as pd
from data_sources import customer_stats_source, merchant_stats_source, transaction_request_source
from entities import customer, merchant
from feast import FeatureView, Field
from feast.on_demand_feature_view import on_demand_feature_view
from feast.types import Float64, Int64, String

customer_stats_fv = FeatureView(
    name="customer_stats_fv",
    entities=[customer],
    ttl=timedelta(days=7),
    schema=[
        Field(name="customer_id", dtype=String),
        Field(name="txn_count_1h", dtype=Int64),
        Field(name="txn_amount_sum_1h", dtype=Float64),
        Field(name="txn_amount_mean_1h", dtype=Float64),
        Field(name="txn_count_24h", dtype=Int64),
        Field(name="txn_amount_sum_24h", dtype=Float64),
        Field(name="txn_amount_mean_24h", dtype=Float64),
        Field(name="txn_count_7d", dtype=Int64),
        Field(name="txn_amount_sum_7d", dtype=Float64),
        Field(name="txn_amount_mean_7d", dtype=Float64, description="0 when the window is empty"),
    ],
    online=True,
    source=customer_stats_source,
    description="Customer's transactions in the last 1h, 24h and 7d before the row's timestamp.",
    tags={"subject": "customer"},
)

merchant_stats_fv = FeatureView(
    name="merchant_stats_fv",
    entities=[merchant],
    ttl=timedelta(days=30),
    schema=[
        Field(name="merchant_id", dtype=String),
        Field(name="txn_count_30d", dtype=Int64),
        Field(name="label_count_30d", dtype=Int64, description="labels known in the 30 days"),
        Field(name="fraud_rate_30d", dtype=Float64, description="0 when no label is known"),
    ],
    online=True,
    source=merchant_stats_source,
    description="Merchant's volume and labelled fraud rate over the 30 days before the snapshot.",
    tags={"subject": "merchant"},
)


@on_demand_feature_view(
    sources=[customer_stats_fv, transaction_request_source],
    schema=[
        Field(name="amount_log", dtype=Float64),
        Field(name="amount_to_mean_7d", dtype=Float64),
        Field(name="hour_of_day", dtype=Int64),
        Field(name="hour_sin", dtype=Float64),
        Field(name="hour_cos", dtype=Float64),
    ],
    description=(
        "The live transaction against the customer's habits: log amount, amount over the "
        "customer's 7-day mean (1 without history) and the UTC hour, also on the unit circle."
    ),
)
def transaction_context_odfv(inputs: pd.DataFrame) -> pd.DataFrame:
    # Self-contained on purpose: Feast stores this function's source in the registry and
    # re-executes it with only pandas and numpy in scope. Feast runs it on every online
    # lookup, so it works on numpy arrays and builds its answer in one step: Series
    # arithmetic and column-by-column inserts made it most of a lookup's cost. The values
    # are the same (same numpy functions on the same float64 values, missing or
    # non-positive means give 1); tests/unit/features/test_online_reader.py checks that.
    import numpy as np
    import pandas as pd

    amount = inputs["amount"].to_numpy(dtype="float64")
    mean_7d = inputs["txn_amount_mean_7d"]
    if mean_7d.dtype != "float64":
        mean_7d = pd.to_numeric(mean_7d, errors="coerce")
    mean_7d = mean_7d.to_numpy(dtype="float64")
    times = inputs["transaction_time"]
    if times.dtype == object:
        # Numbers sent as text ("1764777960") are numbers, not dates.
        numeric = pd.to_numeric(times, errors="coerce")
        if numeric.notna().all():
            times = numeric
    if not (isinstance(times.dtype, pd.DatetimeTZDtype) and str(times.dtype.tz) == "UTC"):
        if pd.api.types.is_numeric_dtype(times.dtype) and not pd.api.types.is_bool_dtype(
            times.dtype
        ):
            # A number is epoch seconds (below 1e11, i.e. before the year 5138) or epoch
            # milliseconds (below 1e14); anything larger (micro- or nanoseconds) or not
            # finite is refused rather than guessed: the hour would silently be wrong.
            numbers = times.to_numpy(dtype="float64")
            size = np.abs(numbers)
            refused = ~np.isfinite(numbers) | (size >= 1e14)
            if refused.any():
                raise ValueError(
                    f"transaction_time {numbers[refused][0]!r} is not epoch seconds or "
                    "milliseconds; send ISO 8601 text with an offset, epoch seconds or epoch "
                    "milliseconds"
                )
            nanos = np.where(size < 1e11, numbers * 1e9, numbers * 1e6)
            times = pd.Series(pd.to_datetime(np.round(nanos).astype("int64"), utc=True))
        else:
            times = pd.to_datetime(times, utc=True)
    missing = np.asarray(pd.isna(times))
    if missing.any():
        raise ValueError(
            f"transaction_time is missing in {int(missing.sum())} of {len(times)} row(s); send "
            "ISO 8601 text with an offset, epoch seconds or epoch milliseconds"
        )
    hour = np.asarray(times.array.hour, dtype="int64")
    angle = 2.0 * np.pi * hour.astype("float64") / 24.0
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(mean_7d > 0, amount / mean_7d, np.nan)
    ratio[np.isnan(ratio)] = 1.0
    return pd.DataFrame(
        {
            "amount_log": np.log1p(amount),
            "amount_to_mean_7d": ratio,
            "hour_of_day": hour,
            "hour_sin": np.sin(angle),
            "hour_cos": np.cos(angle),
        },
        index=inputs.index,
        copy=False,
    )
