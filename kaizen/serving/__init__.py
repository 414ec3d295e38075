"""Online serving: the KServe predictor and its request validation.

:class:`FraudPredictor` lives in :mod:`kaizen.serving.predictor` (importing it imports
KServe); :mod:`kaizen.serving.schema` validates requests without any server.
"""
