"""Column names shared by ingestion, features, training and serving.

Raw transactions (generated or a user's own CSV/Parquet) carry exactly these columns:

| column            | type                    | meaning                                       |
|-------------------|-------------------------|-----------------------------------------------|
| transaction_id    | string, unique          | one card transaction                          |
| customer_id       | string                  | Feast entity ``customer``                     |
| merchant_id       | string                  | Feast entity ``merchant``                     |
| amount            | float, > 0              | transaction amount                            |
| event_timestamp   | timestamp, UTC          | when the transaction happened                 |
| is_fraud          | int, 0 or 1             | the label                                     |
| label_timestamp   | timestamp, UTC          | when the label became known (>= event time)   |

Training/validation/test sets built from Feast keep the key columns, ``is_fraud`` and the
feature columns; the ordered feature list travels beside the data.
"""

from __future__ import annotations

TRANSACTION_ID = "transaction_id"
CUSTOMER_ID = "customer_id"
MERCHANT_ID = "merchant_id"
AMOUNT = "amount"
EVENT_TIMESTAMP = "event_timestamp"
LABEL = "is_fraud"
LABEL_TIMESTAMP = "label_timestamp"

RAW_COLUMNS: tuple[str, ...] = (
    TRANSACTION_ID,
    CUSTOMER_ID,
    MERCHANT_ID,
    AMOUNT,
    EVENT_TIMESTAMP,
    LABEL,
    LABEL_TIMESTAMP,
)

# Columns of a training set that are never model inputs.
NON_FEATURE_COLUMNS: frozenset[str] = frozenset(
    {TRANSACTION_ID, CUSTOMER_ID, MERCHANT_ID, EVENT_TIMESTAMP, LABEL, LABEL_TIMESTAMP}
)
