"""The cluster configuration (feature_repo/envs/cluster) loads as Spark + Redis + S3 registry,
and the definitions become SparkSources under it; no cluster, network, Java or Spark session."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kaizen.features import FeatureRepoError, load_feature_store

FEAST = Path(sys.executable).with_name("feast")
CLUSTER_YAML = Path("feature_repo") / "envs" / "cluster" / "feature_store.yaml"
# The examples of the file's own comment block.
EXAMPLE = {
    "KAIZEN_FEAST_REGISTRY_URI": "s3://kaizen/feast/registry.db",
    "KAIZEN_REDIS_CONNECTION": "redis.kaizen.svc.cluster.local:6379",
    "KAIZEN_SPARK_MASTER": "k8s://https://kubernetes.default.svc:443",
    "KAIZEN_SPARK_IMAGE": "apache/spark:4.3.0",
    "KAIZEN_SPARK_NAMESPACE": "kubeflow-user-example-com",
    "KAIZEN_SPARK_DRIVER_HOST": "10.244.1.17",
    "KAIZEN_S3_SECRET": "mlpipeline-minio-artifact",
    "AWS_ENDPOINT_URL_S3": "http://minio-service.kubeflow:9000",
    "AWS_DEFAULT_REGION": "us-east-1",
    "KAIZEN_FEAST_STAGING_URI": "s3://kaizen/feast/staging",
}
DATA_URI = "s3://kaizen/feast/data/current"
SOURCE_NAMES = ("customer_stats_source", "merchant_stats_source")


@pytest.fixture
def cluster_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    for name, value in EXAMPLE.items():
        monkeypatch.setenv(name, value)
    return EXAMPLE


def expanded_variables(text: str) -> list[str]:
    """The ${VAR}s the file expands, outside its comments."""
    lines = [line.split("#", 1)[0] for line in text.splitlines()]
    return sorted(set(re.findall(r"\$\{(\w+)\}", "\n".join(lines))))


def parse_definitions(repo: Path) -> Any:
    """The repo's objects as `feast plan` / `feast apply` parse them, in this process."""
    from feast.repo_operations import parse_repo

    from kaizen.features.feast_adapter import definitions_importable

    with definitions_importable(repo):
        return parse_repo(repo)


def test_every_variable_of_the_cluster_file_is_documented_with_an_example(
    repo_root: Path,
) -> None:
    text = (repo_root / CLUSTER_YAML).read_text()
    assert expanded_variables(text) == sorted(EXAMPLE)
    for name, example in EXAMPLE.items():
        entry = re.search(rf"^#   {name} .*?(?=^#   \S|\Z)", text, re.MULTILINE | re.DOTALL)
        assert entry, f"{name} is not in the comment block of {CLUSTER_YAML}"
        assert example in entry.group(0), f"the example {example!r} of {name} is not given"
    # Credentials come from the pod environment or a Secret, never from the file's settings.
    settings = "\n".join(line.split("#", 1)[0] for line in text.lower().splitlines())
    for credential in ("password=", "s3a.access.key", "s3a.secret.key", "aws_session_token"):
        assert credential not in settings


def test_feast_loads_the_cluster_config_as_spark_redis_and_s3_registry(
    repo_root: Path, cluster_env: dict[str, str]
) -> None:
    from feast import FeatureStore
    from feast.infra.offline_stores.contrib.spark_offline_store.spark import (
        SparkOfflineStoreConfig,
    )
    from feast.infra.online_stores.redis import RedisOnlineStoreConfig
    from pyspark.sql import SparkSession

    store = FeatureStore(
        repo_path=str(repo_root / "feature_repo"), fs_yaml_file=repo_root / CLUSTER_YAML
    )
    config = store.config
    assert config.project == "kaizen"
    assert config.entity_key_serialization_version == 3
    assert config.registry.path == cluster_env["KAIZEN_FEAST_REGISTRY_URI"]

    offline = config.offline_store
    assert isinstance(offline, SparkOfflineStoreConfig) and offline.type == "spark"
    assert offline.staging_location == cluster_env["KAIZEN_FEAST_STAGING_URI"]
    assert offline.region == cluster_env["AWS_DEFAULT_REGION"]
    secret = cluster_env["KAIZEN_S3_SECRET"]
    assert offline.spark_conf == {
        "spark.master": cluster_env["KAIZEN_SPARK_MASTER"],
        "spark.kubernetes.container.image": cluster_env["KAIZEN_SPARK_IMAGE"],
        "spark.kubernetes.namespace": cluster_env["KAIZEN_SPARK_NAMESPACE"],
        "spark.driver.host": cluster_env["KAIZEN_SPARK_DRIVER_HOST"],
        "spark.kubernetes.executor.secretKeyRef.AWS_ACCESS_KEY_ID": f"{secret}:accesskey",
        "spark.kubernetes.executor.secretKeyRef.AWS_SECRET_ACCESS_KEY": f"{secret}:secretkey",
        "spark.jars.packages": "org.apache.hadoop:hadoop-aws:3.5.0",
        "spark.hadoop.fs.s3a.endpoint": cluster_env["AWS_ENDPOINT_URL_S3"],
        "spark.hadoop.fs.s3a.endpoint.region": cluster_env["AWS_DEFAULT_REGION"],
        "spark.hadoop.fs.s3a.path.style.access": "true",
        "spark.sql.session.timeZone": "UTC",
    }

    online = config.online_store
    assert isinstance(online, RedisOnlineStoreConfig) and online.type == "redis"
    assert online.connection_string == cluster_env["KAIZEN_REDIS_CONNECTION"]
    # Loading the configuration starts nothing: no Spark session, no connection.
    assert SparkSession.getActiveSession() is None


def test_hadoop_aws_matches_the_hadoop_pyspark_bundles(repo_root: Path) -> None:
    import pyspark

    jars = Path(pyspark.__file__).parent / "jars"
    bundled = sorted(jar.name for jar in jars.glob("hadoop-client-api-*.jar"))
    version = re.search(r"hadoop-aws:([\d.]+)", (repo_root / CLUSTER_YAML).read_text())
    assert version and bundled == [f"hadoop-client-api-{version.group(1)}.jar"]


def test_kaizen_names_the_unset_variables_of_the_cluster_config(
    repo_root: Path,
    tmp_path: Path,
    kaizen_home: Path,
    cluster_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A cluster image ships the cluster file as the repo's feature_store.yaml.
    repo = Path(shutil.copytree(repo_root / "feature_repo", tmp_path / "feature_repo"))
    shutil.copyfile(repo / "envs" / "cluster" / "feature_store.yaml", repo / "feature_store.yaml")
    monkeypatch.delenv("KAIZEN_REDIS_CONNECTION")
    monkeypatch.delenv("KAIZEN_SPARK_DRIVER_HOST")
    with pytest.raises(
        FeatureRepoError,
        match=r"\['KAIZEN_REDIS_CONNECTION', 'KAIZEN_SPARK_DRIVER_HOST'\], which are not set",
    ):
        load_feature_store(repo, kaizen_home)

    monkeypatch.setenv("KAIZEN_REDIS_CONNECTION", cluster_env["KAIZEN_REDIS_CONNECTION"])
    monkeypatch.setenv("KAIZEN_SPARK_DRIVER_HOST", cluster_env["KAIZEN_SPARK_DRIVER_HOST"])
    store = load_feature_store(repo, kaizen_home)
    assert store.config.offline_store.type == "spark"
    assert store.config.online_store.type == "redis"


def test_spark_definitions_are_spark_sources_over_the_bucket(
    repo_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from feast import FileSource
    from feast.infra.offline_stores.contrib.spark_offline_store.spark_source import SparkSource

    repo = repo_root / "feature_repo"
    monkeypatch.delenv("KAIZEN_FEAST_OFFLINE_STORE", raising=False)
    monkeypatch.setenv("KAIZEN_FEAST_DATA_URI", str(tmp_path / "data"))
    default = {source.name: source for source in parse_definitions(repo).data_sources}
    assert all(isinstance(default[name], FileSource) for name in SOURCE_NAMES)

    monkeypatch.setenv("KAIZEN_FEAST_OFFLINE_STORE", "spark")
    monkeypatch.setenv("KAIZEN_FEAST_DATA_URI", f"{DATA_URI}/")
    contents = parse_definitions(repo)
    sources = {source.name: source for source in contents.data_sources}
    for name in SOURCE_NAMES:
        source = sources[name]
        assert isinstance(source, SparkSource), type(source)
        file = name.removesuffix("_source") + ".parquet"
        # s3:// is recorded as s3a://, the scheme of Spark's S3 connector.
        assert source.path == f"s3a://kaizen/feast/data/current/{file}"
        assert (source.file_format, source.timestamp_field) == ("parquet", "event_timestamp")
        assert source.description == default[name].description
    views = {view.name: view.batch_source.name for view in contents.feature_views}
    assert views == {
        "customer_stats_fv": "customer_stats_source",
        "merchant_stats_fv": "merchant_stats_source",
    }


def test_spark_sources_need_a_data_uri_and_a_known_store(
    repo_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = repo_root / "feature_repo"
    monkeypatch.setenv("KAIZEN_FEAST_OFFLINE_STORE", "spark")
    monkeypatch.delenv("KAIZEN_FEAST_DATA_URI", raising=False)
    with pytest.raises(RuntimeError, match="KAIZEN_FEAST_OFFLINE_STORE=spark needs KAIZEN_FEAST"):
        parse_definitions(repo)
    monkeypatch.setenv("KAIZEN_FEAST_OFFLINE_STORE", "bigquery")
    with pytest.raises(RuntimeError, match=r"KAIZEN_FEAST_OFFLINE_STORE='bigquery' is not a known"):
        parse_definitions(repo)


def test_feast_plans_the_cluster_config_without_a_cluster_or_java(
    repo_root: Path, tmp_path: Path
) -> None:
    """`feast plan` with the cluster file, its S3 registry swapped for a local file."""
    repo = Path(shutil.copytree(repo_root / "feature_repo", tmp_path / "feature_repo"))
    before = {path.relative_to(repo) for path in repo.rglob("*")}
    config = tmp_path / "cluster.yaml"
    config.write_text(
        (repo_root / CLUSTER_YAML)
        .read_text()
        .replace("${KAIZEN_FEAST_REGISTRY_URI}", str(tmp_path / "registry.db"))
    )
    env = {
        key: value for key, value in os.environ.items() if key not in ("JAVA_HOME", "SPARK_HOME")
    }
    env.update(EXAMPLE, KAIZEN_FEAST_OFFLINE_STORE="spark", KAIZEN_FEAST_DATA_URI=DATA_URI)
    env["PATH"] = str(FEAST.parent)  # no java on the PATH: a Spark session could not start
    completed = subprocess.run(
        [str(FEAST), "-c", str(repo), "-f", str(config), "plan", "--skip-source-validation"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    for line in (
        "Created feature view customer_stats_fv",
        "Created feature view merchant_stats_fv",
        "Created feature service fraud_model_v1",
    ):
        assert line in completed.stdout
    assert "The spark data source API is an experimental feature" in completed.stderr
    assert {path.relative_to(repo) for path in repo.rglob("*")} == before
