"""The pipeline's steps as plain Python: files in, files out, a JSON-safe summary back.

One module per step, named like its KFP component in ``components/`` (``ingest_data``,
``build_features``, ``tune_model``, ``train_model``, ``evaluate_model``, ``gate_model``,
``register_model``, ``notify_run``). Each component is a thin wrapper that loads the settings
and maps artifact paths onto its step, so the steps are tested without KFP and the benchmark
runs the very same steps in one process. Heavy libraries (TensorFlow, Feast, MLflow) are
imported inside the functions.
"""

from kaizen.steps.build_features import features_step
from kaizen.steps.evaluate_model import evaluate_step
from kaizen.steps.gate_model import gate_step
from kaizen.steps.ingest_data import ingest_step
from kaizen.steps.notify_run import notify_step
from kaizen.steps.register_model import register_step
from kaizen.steps.train_model import train_step
from kaizen.steps.tune_model import tune_step

__all__ = [
    "evaluate_step",
    "features_step",
    "gate_step",
    "ingest_step",
    "notify_step",
    "register_step",
    "train_step",
    "tune_step",
]
