"""Component: generate or load transactions, validate them, hand them on as Parquet."""

from kfp import dsl
from kfp.dsl import Dataset, Output

from components import COMPONENT_IMAGE


@dsl.component(base_image=COMPONENT_IMAGE, install_kfp_package=False)
def ingest_data(
    source_uri: str,
    seed: int,
    rows: int,
    customers: int,
    merchants: int,
    days: int,
    fraud_rate: float,
    drift: float,
    run_id: str,
    transactions: Output[Dataset],
) -> None:
    """Ingest card transactions and validate them against the transaction schema.

    Args:
        source_uri: CSV or Parquet file (path or file:// URI) with the transaction columns;
            empty to generate synthetic data.
        seed: seed of the synthetic generator.
        rows: number of synthetic transactions.
        customers: number of synthetic customers.
        merchants: number of synthetic merchants.
        days: days of synthetic history.
        fraud_rate: share of fraudulent synthetic transactions.
        drift: strength of injected drift (0 = none, 1 = strong).
        run_id: the pipeline run id (its MLflow parent run).
        transactions: validated transactions (Parquet).
    """
    from kaizen.platform.settings import load_settings
    from kaizen.steps.ingest_data import ingest_step

    summary = ingest_step(
        source_uri,
        transactions.path,
        settings=load_settings(),
        seed=seed,
        rows=rows,
        customers=customers,
        merchants=merchants,
        days=days,
        fraud_rate=fraud_rate,
        drift=drift,
        run_id=run_id,
    )
    transactions.metadata.update({key: str(value) for key, value in summary.items()})
