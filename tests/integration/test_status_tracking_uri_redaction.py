"""``kaizen status`` against a real MLflow tracking server whose URI carries credentials.

The server is the rehearsal's (``mlflow server`` on 127.0.0.1, artifacts in moto's S3); it
ignores the basic-auth header, so the credentials only have to stay out of what Kaizen shows.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from kaizen.rehearsal.services import MlflowServer, S3Server

PASSWORD = "s3cret-Pa55"


def test_status_shows_the_tracking_server_with_its_credentials_masked(
    tmp_path: Path, kaizen_home: Path
) -> None:
    with S3Server(tmp_path / "services") as s3, MlflowServer(tmp_path / "services", s3) as mlflow:
        address = mlflow.url.removeprefix("http://")
        result = subprocess.run(
            [sys.executable, "-m", "kaizen.cli", "status"],
            capture_output=True,
            text=True,
            timeout=600,
            env={
                **os.environ,
                "KAIZEN_MLFLOW_TRACKING_URI": f"http://alice:{PASSWORD}@{address}",
                "KAIZEN_LOG_LEVEL": "DEBUG",
            },
            check=False,
        )

    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"fraud-detector  (http://***@{address})")
    assert "champion" in result.stdout
    for shown in (result.stdout, result.stderr):
        assert PASSWORD not in shown and "alice" not in shown
    leaked = [
        path
        for path in kaizen_home.rglob("*")
        if path.is_file() and PASSWORD in path.read_text(errors="replace")
    ]
    assert leaked == []
