"""The environment every rehearsal container gets, and how it is shown without its secrets.

:func:`container_environment` is the one place it is built; the names are the settings'
variables (``KAIZEN_*``, see ``kaizen/platform/settings.py``) and those the libraries read
themselves (boto3 for MLflow's artifact store and Feast's S3 registry). Whatever the rehearsal
prints or writes to its own logs goes through :func:`describe_environment` or :func:`redact`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from pydantic import SecretStr

from kaizen.platform.redaction import MASK, redact_text

# Inside the containers: the image's own KAIZEN_HOME (per container, as on a cluster where a
# pod's filesystem goes with the pod) and the folder every task shares (a volume on a cluster).
CONTAINER_HOME = "/var/lib/kaizen"
SHARED_MOUNT = "/var/lib/kaizen-shared"
FEAST_CONFIG = "/app/feature_repo/envs/volume/feature_store.yaml"
# Variables whose whole value is a credential.
SECRET_VARIABLES = frozenset(
    {"KAIZEN_S3_ACCESS_KEY", "KAIZEN_S3_SECRET_KEY", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"}
)
# Variables holding a credential inside a connection string (``...,password=<secret>``).
_PASSWORD_FIELD = re.compile(r"(password=)[^,]*")


def container_environment(
    *,
    s3_endpoint: str,
    s3_access_key: SecretStr,
    s3_secret_key: SecretStr,
    mlflow_tracking_uri: str,
    redis_address: str,
    redis_password: SecretStr,
    bucket: str = "kaizen",
    region: str = "us-east-1",
) -> dict[str, str]:
    """The environment of every pipeline task and of the serving container.

    Args:
        s3_endpoint: ``127.0.0.1:<port>`` of the S3 server (plain HTTP).
        s3_access_key: its access key.
        s3_secret_key: its secret key.
        mlflow_tracking_uri: ``http://127.0.0.1:<port>`` of the MLflow server.
        redis_address: ``127.0.0.1:<port>`` of Redis (Feast's online store).
        redis_password: Redis's password.
        bucket: the bucket holding every object.
        region: the bucket's region.

    Returns:
        Variable name to value; it holds the credentials in clear, so show it only through
        :func:`describe_environment`.
    """
    s3_url = f"http://{s3_endpoint}"
    access_key = s3_access_key.get_secret_value()
    secret_key = s3_secret_key.get_secret_value()
    return {
        "KAIZEN_ENVIRONMENT": "production",
        "KAIZEN_HOME": CONTAINER_HOME,
        "KAIZEN_STORAGE_BACKEND": "s3",
        "KAIZEN_S3_ENDPOINT": s3_endpoint,
        "KAIZEN_S3_SECURE": "false",
        "KAIZEN_S3_BUCKET": bucket,
        "KAIZEN_S3_REGION": region,
        "KAIZEN_S3_ACCESS_KEY": access_key,
        "KAIZEN_S3_SECRET_KEY": secret_key,
        "KAIZEN_MLFLOW_TRACKING_URI": mlflow_tracking_uri,
        "KAIZEN_FEAST_CONFIG": FEAST_CONFIG,
        "KAIZEN_FEAST_REGISTRY_URI": f"s3://{bucket}/feast/registry.db",
        "KAIZEN_FEAST_DATA_URI": f"{SHARED_MOUNT}/feast/data/current",
        "KAIZEN_REDIS_CONNECTION": f"{redis_address},password={redis_password.get_secret_value()}",
        # boto3, for Feast's S3 registry and MLflow's S3 artifact store.
        "FEAST_S3_ENDPOINT_URL": s3_url,
        "AWS_ENDPOINT_URL_S3": s3_url,
        "AWS_ACCESS_KEY_ID": access_key,
        "AWS_SECRET_ACCESS_KEY": secret_key,
        "AWS_DEFAULT_REGION": region,
        "MLFLOW_S3_ENDPOINT_URL": s3_url,
    }


def describe_environment(environment: Mapping[str, str]) -> list[str]:
    """``NAME=value`` lines, sorted, every credential replaced by ``***``."""
    lines = []
    for name in sorted(environment):
        value = environment[name]
        shown = MASK if name in SECRET_VARIABLES else _PASSWORD_FIELD.sub(rf"\g<1>{MASK}", value)
        lines.append(f"{name}={shown}")
    return lines


def secret_values(environment: Mapping[str, str]) -> set[str]:
    """The credentials in ``environment`` (whole values and connection-string passwords)."""
    found = {environment[name] for name in SECRET_VARIABLES if environment.get(name)}
    for value in environment.values():
        found.update(match.group(0).split("=", 1)[1] for match in _PASSWORD_FIELD.finditer(value))
    return {value for value in found if value}


def redact(text: str, secrets: Iterable[str]) -> str:
    """``text`` with each secret, and any credential in a URI or connection string, as ``***``.

    The platform's one redaction (:func:`kaizen.platform.redaction.redact_text`), given the
    rehearsal's own credentials.
    """
    return redact_text(text, secrets)
