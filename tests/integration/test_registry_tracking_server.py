"""The registry against an MLflow tracking server whose artifacts live in a bucket, as on a
cluster: a model registered through the server downloads with nothing but its tracking URI.

The servers are the rehearsal's (moto's S3 and ``mlflow server`` on 127.0.0.1).
"""

from __future__ import annotations

from pathlib import Path

from kaizen.platform.settings import Settings
from kaizen.rehearsal.services import MlflowServer, S3Server
from tests.support.serving import export_tiny_model, tiny_frame

FEATURES = ["amount_zscore", "merchant_risk", "velocity_1h"]


def test_a_version_registered_through_the_server_downloads_from_the_bucket(
    tmp_path: Path,
) -> None:
    from kaizen.registry import PipelineRunTracker, register_challenger
    from kaizen.registry.models import download_model_version

    export = export_tiny_model(tmp_path / "export", FEATURES)
    with S3Server(tmp_path / "services") as s3, MlflowServer(tmp_path / "services", s3) as mlflow:
        settings = Settings(home=tmp_path / "home", mlflow_tracking_uri=mlflow.url)
        tracker = PipelineRunTracker("server-run", settings=settings)
        data = tmp_path / "training.parquet"
        tiny_frame(10, 1, FEATURES).to_parquet(data)
        tracker.log_data(
            manifest={"feature_service": "fraud_model_v1", "feature_views": []},
            training_data=data,
            git_commit="abc123",
        )
        registered = register_challenger(export, run_id=tracker.round_run_id(0), settings=settings)
        assert registered.source.startswith("mlflow-artifacts:")  # only the server resolves it

        # a fresh process's view: the tracking URI in the settings, MLflow's global one unset
        local, info = download_model_version("champion", tmp_path / "served", settings)

        assert info.version == registered.version
        assert (local / "model.keras").read_bytes() == (export / "model.keras").read_bytes()
        in_bucket = [
            obj.object_name
            for obj in s3.client().list_objects("kaizen", prefix="mlflow/", recursive=True)
        ]
        assert any(name.endswith("/model.keras") for name in in_bucket), in_bucket
