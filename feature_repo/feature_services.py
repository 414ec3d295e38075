"""Feature services: the exact feature set one model version is trained and served with."""

from feast import FeatureService
from feature_views import customer_stats_fv, merchant_stats_fv, transaction_context_odfv

fraud_model_v1 = FeatureService(
    name="fraud_model_v1",
    features=[customer_stats_fv, merchant_stats_fv, transaction_context_odfv],
    description="Inputs of the fraud model: customer windows, merchant risk, transaction context.",
    tags={"model": "fraud-detector"},
)
