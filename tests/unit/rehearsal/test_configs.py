"""The files and command lines the rehearsal writes for its servers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import yaml
from pydantic import SecretStr

from kaizen.rehearsal import services
from kaizen.rehearsal.services import (
    ServiceError,
    mlflow_server_command,
    redis_config,
    registries_conf,
    registry_config,
    require_binary,
)


def test_podman_treats_the_local_registry_as_plain_http() -> None:
    conf = tomllib.loads(registries_conf("127.0.0.1:5123"))
    assert conf["registry"] == [{"location": "127.0.0.1:5123", "insecure": True}]
    assert conf["unqualified-search-registries"] == []


def test_the_registry_listens_on_127_0_0_1_and_stores_under_the_workdir(tmp_path: Path) -> None:
    config = yaml.safe_load(registry_config(tmp_path / "registry", 5123))
    assert config["version"] == 0.1
    assert config["http"]["addr"] == "127.0.0.1:5123"
    assert config["storage"]["filesystem"] == {"rootdirectory": str(tmp_path / "registry")}
    assert "auth" not in config


def test_redis_binds_127_0_0_1_persists_nothing_and_requires_the_password(tmp_path: Path) -> None:
    lines = redis_config(6400, tmp_path, SecretStr("pw-123")).splitlines()
    for expected in (
        "bind 127.0.0.1",
        "port 6400",
        'save ""',
        "appendonly no",
        f"dir {tmp_path}",
        "requirepass pw-123",
    ):
        assert expected in lines


def test_mlflow_serves_artifacts_from_the_bucket_on_127_0_0_1() -> None:
    command = mlflow_server_command(
        Path("/venv/bin/mlflow"),
        port=5300,
        backend_store_uri="sqlite:////w/mlflow.db",
        artifacts_destination="s3://kaizen/mlflow",
        workers=2,
    )
    assert command[:2] == ["/venv/bin/mlflow", "server"]
    options = dict(zip(command[2::2], command[3::2], strict=True))
    assert options == {
        "--host": "127.0.0.1",
        "--port": "5300",
        "--workers": "2",
        "--backend-store-uri": "sqlite:////w/mlflow.db",
        "--artifacts-destination": "s3://kaizen/mlflow",
        "--allowed-hosts": "127.0.0.1:5300,localhost:5300",
    }


def test_a_missing_binary_names_the_make_target(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services.shutil, "which", lambda name: None)
    with pytest.raises(
        ServiceError, match=r"run `make rehearsal-deps` \(apt-installs redis-server\)"
    ):
        require_binary("redis-server", "redis-server")
