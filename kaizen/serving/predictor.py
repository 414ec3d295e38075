"""The KServe predictor: the registry's champion behind the V1 and V2 inference protocols.

``FraudPredictor`` downloads a registry alias (``champion`` by default) with every file's
sha256 verified, loads it with Keras ``safe_mode`` and scores one warm-up row before it
reports ready. Requests are validated by :mod:`kaizen.serving.schema`; any problem is a
400 whose message names the instance and field (KServe's ``InvalidInput``), never a 500.

Entity requests (ids plus the live transaction) are resolved through the Feast online
store with the feature service the model was trained on (its ``kaizen.feature_service``
tag, ``fraud_model_v1`` when absent). An entity with no online row is not an error: Feast
returns nulls and :func:`kaizen.features.store.online_features` fills stored features with
0 ("no activity"), exactly as training filled them, so a first-time customer is scored as
one without history.

Run one server on this machine::

    python -m kaizen.serving.predictor --http-port 8080 --feature-repo feature_repo
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kserve
import numpy as np
from kserve.errors import InvalidInput
from kserve.protocol.infer_type import InferOutput, InferRequest, InferResponse

from kaizen.serving.schema import (
    DEFAULT_MAX_BATCH,
    RequestValidationError,
    check_tensor,
    parse_instances,
)

if TYPE_CHECKING:
    from kaizen.registry import ModelVersionInfo
    from kaizen.settings import Settings

DEFAULT_MODEL_NAME = "fraud-detector"
DEFAULT_THRESHOLD = 0.5
FEATURES_FILE = "features.json"
OUTPUT_NAME = "fraud_probability"


class FraudPredictor(kserve.Model):
    """A registered fraud model served over KServe's V1 and V2 protocols.

    Args:
        name: Model name in the URLs (``/v1/models/<name>:predict``).
        alias: Registry alias or version number to serve.
        threshold: Probability at or above which ``is_fraud`` is true.
        max_batch: Most instances (V1) or rows (V2) per request.
        feature_repo: Feast repo for entity requests; None rejects them with a 400.
        settings: Kaizen settings (registry and ``KAIZEN_HOME``); loaded when None.
    """

    def __init__(
        self,
        name: str = DEFAULT_MODEL_NAME,
        *,
        alias: int | str = "champion",
        threshold: float = DEFAULT_THRESHOLD,
        max_batch: int = DEFAULT_MAX_BATCH,
        feature_repo: Path | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(name)
        if not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {threshold}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self.alias = alias
        self.threshold = threshold
        self.max_batch = max_batch
        self.feature_repo = feature_repo
        self._settings = settings
        self.model: Any = None
        self.info: ModelVersionInfo | None = None
        self.features: list[str] = []
        self.feature_service = ""
        self._store: Any = None

    def load(self) -> bool:
        """Download and verify the alias, load it, open Feast if configured, warm up.

        Returns:
            True once ready.

        Raises:
            kaizen.registry.ModelIntegrityError: the files fail their sha256 check.
            kaizen.registry.ModelVersionNotFoundError: the alias points nowhere.
        """
        from kaizen.features.store import DEFAULT_FEATURE_SERVICE, load_feature_store
        from kaizen.registry import download_model_version
        from kaizen.registry.models import TAG_FEATURE_SERVICE
        from kaizen.settings import load_settings
        from kaizen.training.train import load_model

        settings = self._settings or load_settings()
        scratch = Path(tempfile.mkdtemp(prefix="kaizen-serving-"))
        try:
            local, info = download_model_version(self.alias, scratch, settings)
            model = load_model(local / "model.keras", expected_sha256=info.sha256)
            features = json.loads((local / FEATURES_FILE).read_text())
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
            raise ValueError(f"{info.label}: {FEATURES_FILE} is not a list of feature names")
        self.model, self.info, self.features = model, info, features
        self.feature_service = info.tags.get(TAG_FEATURE_SERVICE) or DEFAULT_FEATURE_SERVICE
        if self.feature_repo is not None:
            self._store = load_feature_store(self.feature_repo, settings.home)
        # The first call builds TF's graph; paying for it here keeps it off the first request.
        self._score(np.zeros((1, len(features)), dtype=np.float32))
        self.ready = True
        return True

    @property
    def model_version(self) -> int:
        """Registry version being served (0 before ``load``)."""
        return self.info.version if self.info is not None else 0

    def _score(self, matrix: np.ndarray) -> np.ndarray:
        import pandas as pd

        from kaizen.training.train import predict_proba

        frame = pd.DataFrame(matrix, columns=self.features)
        return predict_proba(self.model, frame, self.features)

    def _entity_matrix(self, rows: dict[int, dict[str, Any]]) -> dict[int, list[float]]:
        from kaizen.features.store import online_features

        if self._store is None:
            first = min(rows)
            raise InvalidInput(
                f"instances[{first}]: entity requests need the Feast online store, which "
                f"this server was started without; send full feature vectors "
                f"({len(self.features)} features)"
            )
        indices = sorted(rows)
        frame = online_features(
            self._store, [rows[i] for i in indices], feature_service=self.feature_service
        )
        missing = [name for name in self.features if name not in frame.columns]
        if missing:
            raise InvalidInput(
                f"feature service {self.feature_service!r} does not provide {missing} "
                f"that {self.info.label if self.info else 'the model'} needs"
            )
        values = frame[self.features].to_numpy(dtype=np.float64)
        return {index: list(values[position]) for position, index in enumerate(indices)}

    async def preprocess(
        self, payload: dict[str, Any] | InferRequest, headers: dict[str, str] | None = None
    ) -> np.ndarray | InferRequest:
        """Validate the request and turn it into the model's feature matrix.

        Args:
            payload: V1 body ``{"instances": [...]}`` or a V2 ``InferRequest``.
            headers: Request headers (unused).

        Returns:
            A float32 matrix of shape ``[n, len(features)]`` (V1), or the request (V2,
            validated here and read in ``predict``).

        Raises:
            InvalidInput: naming the instance and field at fault (HTTP 400).
        """
        if isinstance(payload, InferRequest):
            self._v2_matrix(payload)
            return payload
        try:
            parsed = parse_instances(payload, self.features, max_batch=self.max_batch)
        except RequestValidationError as error:
            raise InvalidInput(str(error)) from None
        rows = dict(parsed.vectors)
        if parsed.entities:
            try:
                rows.update(self._entity_matrix(parsed.entities))
            except ValueError as error:
                if isinstance(error, InvalidInput):
                    raise
                raise InvalidInput(str(error)) from None
        return np.asarray([rows[i] for i in range(parsed.count)], dtype=np.float32)

    def _v2_matrix(self, request: InferRequest) -> np.ndarray:
        if len(request.inputs) != 1:
            names = [tensor.name for tensor in request.inputs]
            raise InvalidInput(f"inputs: expected exactly one tensor 'features', got {names}")
        tensor = request.inputs[0]
        try:
            check_tensor(tensor.name, tensor.datatype, tensor.shape, self.features, self.max_batch)
            matrix = np.asarray(tensor.as_numpy(), dtype=np.float32)
            matrix = matrix.reshape(tensor.shape)
        except RequestValidationError as error:
            raise InvalidInput(str(error)) from None
        except (ValueError, TypeError) as error:
            raise InvalidInput(
                f"inputs.features: data does not match shape {list(tensor.shape)}: {error}"
            ) from None
        bad_rows, bad_columns = np.nonzero(~np.isfinite(matrix))
        if len(bad_rows):
            raise InvalidInput(
                f"inputs.features[{bad_rows[0]}][{bad_columns[0]}] "
                f"({self.features[bad_columns[0]]}): expected a finite number, "
                f"got {matrix[bad_rows[0], bad_columns[0]]}"
            )
        return matrix

    async def predict(
        self,
        payload: np.ndarray | InferRequest,
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """Score the validated matrix.

        Args:
            payload: The matrix from ``preprocess`` (V1) or the V2 request.
            headers: Request headers (unused).
            response_headers: Response headers (unused).

        Returns:
            V1: ``{"predictions": [{"fraud_probability", "is_fraud", "model_version"}]}``.
            V2: an ``InferResponse`` with one FP32 tensor ``fraud_probability`` of shape [n].
        """
        if isinstance(payload, InferRequest):
            probabilities = self._score(self._v2_matrix(payload)).astype(np.float32)
            output = InferOutput(name=OUTPUT_NAME, shape=[len(probabilities)], datatype="FP32")
            output.set_data_from_numpy(probabilities, binary_data=False)
            return InferResponse(
                response_id=payload.id or "",
                model_name=self.name,
                model_version=str(self.model_version),
                infer_outputs=[output],
            )
        probabilities = self._score(payload)
        return {
            "predictions": [
                {
                    "fraud_probability": float(p),
                    "is_fraud": bool(p >= self.threshold),
                    "model_version": self.model_version,
                }
                for p in probabilities
            ]
        }

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata: one FP32 tensor ``features`` of shape ``[-1, len(features)]``."""
        return [{"name": "features", "datatype": "FP32", "shape": [-1, len(self.features)]}]

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata: one FP32 tensor ``fraud_probability`` of shape ``[-1]``."""
        return [{"name": OUTPUT_NAME, "datatype": "FP32", "shape": [-1]}]


def main(argv: Sequence[str] | None = None) -> None:
    """Load the alias and serve it with KServe's ModelServer until stopped.

    Args:
        argv: Command-line arguments (``sys.argv[1:]`` when None).
    """
    parser = argparse.ArgumentParser(description="Serve the Kaizen fraud model with KServe.")
    parser.add_argument("--http-port", type=int, default=8080)
    parser.add_argument("--model-name", default=DEFAULT_MODEL_NAME)
    parser.add_argument("--alias", default="champion")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--max-batch", type=int, default=DEFAULT_MAX_BATCH)
    parser.add_argument("--feature-repo", type=Path, default=None)
    args = parser.parse_args(argv)
    predictor = FraudPredictor(
        args.model_name,
        alias=args.alias,
        threshold=args.threshold,
        max_batch=args.max_batch,
        feature_repo=args.feature_repo,
    )
    predictor.load()
    kserve.ModelServer(http_port=args.http_port, enable_grpc=False, workers=1).start([predictor])


if __name__ == "__main__":
    main()
