"""The rehearsal's services, each a real server on 127.0.0.1: it starts, answers, stops.

S3 (moto) and MLflow need only the venv and run in ``make test``. Redis, the image registry
and podman are Debian packages that ``make rehearsal-deps`` installs: their tests are slow
(``make test-all``), and on a machine without the package they fail naming that target.
"""

from __future__ import annotations

import io
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from pydantic import SecretStr

from kaizen.rehearsal.services import (
    ImageRegistry,
    MlflowServer,
    PodmanService,
    RedisServer,
    S3Server,
    http_ok,
)


def _refused(url: str) -> bool:
    try:
        urllib.request.urlopen(url, timeout=5)
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def _no_secret_in_logs(workdir: Path, *secrets: str) -> None:
    for path in (workdir / "logs").glob("*.log"):
        text = path.read_text(errors="replace")
        assert not [secret for secret in secrets if secret in text], f"a secret in {path}"


def test_s3_serves_the_bucket_to_the_minio_client_and_stops(tmp_path: Path) -> None:
    with S3Server(tmp_path) as s3:
        client = s3.client()
        assert client.bucket_exists("kaizen")
        client.put_object("kaizen", "probe/hello.txt", io.BytesIO(b"hello"), length=5)
        assert client.get_object("kaizen", "probe/hello.txt").read() == b"hello"
        # a presigned URL (as MLflow's server hands out) names the access key in its query
        presigned = client.presigned_get_object("kaizen", "probe/hello.txt")
        with urllib.request.urlopen(presigned, timeout=10) as response:
            assert response.read() == b"hello"
        url = f"{s3.url}/kaizen"
    assert _refused(url)
    log = (tmp_path / "logs" / "s3.log").read_text()
    assert "PUT /kaizen/probe/hello.txt" in log
    assert "X-Amz-Credential=***/" in log
    _no_secret_in_logs(tmp_path, s3.access_key.get_secret_value(), s3.secret_key.get_secret_value())


def test_mlflow_stores_runs_and_proxies_artifacts_into_the_bucket(tmp_path: Path) -> None:
    from mlflow import MlflowClient

    artifact = tmp_path / "note.txt"
    artifact.write_text("rehearsed")
    with S3Server(tmp_path) as s3, MlflowServer(tmp_path, s3) as mlflow:
        assert http_ok(f"{mlflow.url}/health")
        client = MlflowClient(tracking_uri=mlflow.url)
        experiment_id = client.create_experiment("rehearsal-probe")
        run = client.create_run(experiment_id)
        client.log_artifact(run.info.run_id, str(artifact))
        client.set_terminated(run.info.run_id)
        assert run.info.artifact_uri.startswith("mlflow-artifacts:")  # the server holds them
        stored = [
            obj.object_name
            for obj in s3.client().list_objects("kaizen", prefix="mlflow/", recursive=True)
        ]
        assert stored == [f"mlflow/{experiment_id}/{run.info.run_id}/artifacts/note.txt"]
        assert client.get_run(run.info.run_id).info.status == "FINISHED"
        process = mlflow.process
    assert process is not None and process.poll() is not None
    assert _refused(f"{mlflow.url}/health")
    _no_secret_in_logs(tmp_path, s3.access_key.get_secret_value(), s3.secret_key.get_secret_value())


@pytest.mark.slow
def test_redis_answers_with_the_password_only(tmp_path: Path) -> None:
    import redis

    with RedisServer(tmp_path) as server:
        with server.client() as client:
            assert client.ping()
            client.set("rehearsal", "1")
            assert client.get("rehearsal") == b"1"
        with (
            server.client(password=False) as anonymous,
            pytest.raises(redis.exceptions.AuthenticationError),
        ):
            anonymous.ping()
        with (
            pytest.raises(redis.exceptions.AuthenticationError),
            server.client(password=SecretStr("wrong")) as wrong,
        ):
            wrong.ping()
        process = server.process
    assert process is not None and process.returncode == 0  # a clean shutdown on SIGTERM
    _no_secret_in_logs(tmp_path, server.password.get_secret_value())


@pytest.mark.slow
def test_the_image_registry_answers_v2_and_stops(tmp_path: Path) -> None:
    with ImageRegistry(tmp_path) as registry:
        assert http_ok(f"http://{registry.address}/v2/")
        url = f"http://{registry.address}/v2/"
    assert _refused(url)
    assert (tmp_path / "registry").is_dir()


@pytest.mark.slow
def test_podman_answers_the_docker_api_on_its_socket(tmp_path: Path) -> None:
    with PodmanService(tmp_path, "127.0.0.1:5999") as podman:
        client = podman.client()
        try:
            assert client.ping()
            assert "Podman" in str(client.version().get("Components", ""))
        finally:
            client.close()
        socket_path = podman.socket_path
    assert "127.0.0.1:5999" in (tmp_path / "registries.conf").read_text()
    assert not socket_path.exists()
