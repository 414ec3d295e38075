"""One settings object for the whole platform, read from ``KAIZEN_*`` environment variables.

Settings are read when a program starts (``load_settings``), never at import time, and an
invalid value stops the program with a message naming the variable and what was expected.
Only entry points read them: the CLI commands, each pipeline component, the model server's
``main`` and the benchmarks. Library code takes a ``Settings`` (or just the value it needs,
such as ``home``) as an argument, so a test builds ``Settings(home=tmp_path)`` instead of
patching the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import AnyHttpUrl, Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from kaizen.platform.names import DEFAULT_MODEL_NAME, DEFAULT_PIPELINE_NAME
from kaizen.platform.redaction import redact_text

ENV_PREFIX = "KAIZEN_"
# Minio's well-known development credentials: fine on a laptop, refused in production.
PLACEHOLDER_SECRET = "minioadmin"
# A Kubernetes namespace or InferenceService name: an RFC 1123 label (KServe also wants a letter
# first, as its Service names are RFC 1035 labels).
DNS_LABEL_PATTERN = r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$"


class SettingsError(ValueError):
    """A ``KAIZEN_*`` variable holds a value the platform cannot use."""


class Settings(BaseSettings):
    """Platform settings. Every field maps to ``KAIZEN_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    environment: Literal["development", "production"] = Field(
        default="development",
        description="development allows placeholder secrets; production refuses them.",
    )
    home: Path = Field(
        default=Path(".kaizen"),
        description="Runtime state of the embedded backend: object store, Feast data, runs, logs.",
    )
    storage_backend: Literal["local", "s3"] = Field(
        default="local",
        description="Object store: 'local' (a folder under KAIZEN_HOME) or 's3' (Minio/S3).",
    )
    s3_endpoint: str = Field(
        default="localhost:9000",
        description="S3/Minio endpoint as host:port (no scheme; TLS is s3_secure).",
    )
    s3_bucket: str = Field(default="kaizen", description="Bucket holding every Kaizen object.")
    s3_access_key: SecretStr = Field(default=SecretStr(PLACEHOLDER_SECRET))
    s3_secret_key: SecretStr = Field(default=SecretStr(PLACEHOLDER_SECRET))
    s3_access_key_file: Path | None = Field(
        default=None,
        description="File holding the access key (a mounted Secret); wins over S3_ACCESS_KEY.",
    )
    s3_secret_key_file: Path | None = Field(
        default=None,
        description="File holding the secret key (a mounted Secret); wins over S3_SECRET_KEY.",
    )
    s3_secure: bool = Field(default=True, description="TLS to the object store (on by default).")
    s3_region: str | None = None
    mlflow_tracking_uri: str | None = Field(
        default=None,
        description="MLflow tracking/registry URI; default SQLite under KAIZEN_HOME.",
    )
    model_name: str = Field(default=DEFAULT_MODEL_NAME, description="Registered model name.")
    pipeline_name: str = Field(
        default=DEFAULT_PIPELINE_NAME,
        description="Pipeline name in the object store and KFP; the MLflow experiment's name.",
    )
    feature_repo: Path = Field(
        default=Path("feature_repo"),
        description="Feast repository with the feature definitions.",
    )
    feast_config: Path | None = Field(
        default=None,
        description=(
            "A feature_store.yaml used instead of the repo's own, for a registry and online "
            "store outside KAIZEN_HOME (feature_repo/envs/volume or envs/cluster)."
        ),
    )
    webhook_url: AnyHttpUrl | None = Field(
        default=None,
        description="If set, the notify step POSTs a JSON summary of every run here.",
    )
    deploy_target: Literal["local", "kserve"] = Field(
        default="local",
        description=(
            "Where the deploy step delivers a registered version: 'local' (a `kaizen serve` "
            "picks it up by hot reload) or 'kserve' (rolls the InferenceService on the cluster)."
        ),
    )
    deploy_namespace: str = Field(
        default="kaizen",
        pattern=DNS_LABEL_PATTERN,
        description="kserve target: the namespace of the InferenceService.",
    )
    deploy_inference_service: str | None = Field(
        default=None,
        pattern=DNS_LABEL_PATTERN,
        description="kserve target: the InferenceService to roll; default: the model name.",
    )
    deploy_server_url: AnyHttpUrl | None = Field(
        default=None,
        description=(
            "local target: a `kaizen serve` (e.g. http://127.0.0.1:8080) the deploy step "
            "watches until it serves the new version; unset: the step only records it."
        ),
    )
    git_commit: str | None = Field(
        default=None,
        description="The commit the code came from, set by the image build or the submitter.",
    )
    kfp_host: str | None = Field(
        default=None,
        description=(
            "Kubeflow Pipelines API for `kaizen upload`/`submit`/`schedule`, e.g. "
            "https://kubeflow.example.com/pipeline or http://127.0.0.1:8888 (a port-forward)."
        ),
    )
    kfp_token_file: Path | None = Field(
        default=None,
        description=(
            "File holding the bearer token for KFP (a ServiceAccount or projected token), "
            "read on every request; unset: no token."
        ),
    )
    kfp_namespace: str | None = Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$",
        description="Kubeflow profile namespace of pipelines, experiments and runs (multi-user).",
    )
    kfp_ui_url: str | None = Field(
        default=None,
        description="Base of the KFP UI links printed; default: KAIZEN_KFP_HOST.",
    )
    kfp_ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the KFP host's TLS certificate."
    )
    kfp_verify_tls: bool = Field(
        default=True, description="Verify the KFP host's TLS certificate (on by default)."
    )
    kfp_service_account: str = Field(
        default="kaizen-pipeline-runner",
        description="ServiceAccount of the pods of submitted runs; empty: KFP's default.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _keys_from_files(cls, values: object) -> object:
        """Read ``KAIZEN_S3_*_KEY_FILE`` into the key (a mounted Secret's file, one line)."""
        if not isinstance(values, dict):
            return values
        for name in ("s3_access_key", "s3_secret_key"):
            path = values.get(f"{name}_file")
            if path in (None, ""):
                continue
            variable = f"{ENV_PREFIX}{name.upper()}_FILE"
            try:
                text = Path(path).read_text(encoding="utf-8").strip()
            except OSError as error:
                raise ValueError(f"{variable}: cannot read {path}: {error.strerror}") from None
            if not text:
                raise ValueError(f"{variable}: {path} is empty")
            values[name] = text
        return values

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.environment == "production" and self.storage_backend == "s3":
            for name in ("s3_access_key", "s3_secret_key"):
                if getattr(self, name).get_secret_value() == PLACEHOLDER_SECRET:
                    raise ValueError(
                        f"{ENV_PREFIX}{name.upper()} must be set in production "
                        "(the development placeholder is refused)"
                    )
        return self

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator(
        "kfp_host", "kfp_token_file", "kfp_namespace", "kfp_ui_url", "kfp_ca_file", mode="before"
    )
    @classmethod
    def _empty_kfp_value_is_none(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("kfp_host", "kfp_ui_url")
    @classmethod
    def _kfp_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(
                "expected an http(s) URL such as https://kubeflow.example.com/pipeline"
            )
        if parts.username is not None or parts.password is not None:
            raise ValueError("must not carry credentials; use KAIZEN_KFP_TOKEN_FILE")
        return value.strip().rstrip("/")

    @field_validator("deploy_server_url", "deploy_inference_service", mode="before")
    @classmethod
    def _empty_deploy_value_is_none(cls, value: object) -> object:
        # A ConfigMap key that is present but empty means "not set", as for the webhook.
        return None if value == "" else value

    @property
    def inference_service(self) -> str:
        """The InferenceService the deploy step rolls: the configured one, or the model name."""
        return self.deploy_inference_service or self.model_name

    @property
    def object_store_dir(self) -> Path:
        return self.home / "objects"

    @property
    def feast_dir(self) -> Path:
        return self.home / "feast"

    @property
    def pipeline_root(self) -> Path:
        return self.home / "pipeline_root"

    @property
    def logs_dir(self) -> Path:
        return self.home / "logs"

    @property
    def tracking_uri(self) -> str:
        """MLflow tracking URI: the configured one, or SQLite under KAIZEN_HOME."""
        return self.mlflow_tracking_uri or f"sqlite:///{self.home / 'mlflow.db'}"


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        if not item["loc"]:  # a check across fields names its variables itself
            lines.append(str(item["msg"]).removeprefix("Value error, "))
            continue
        field = ".".join(str(part) for part in item["loc"])
        variable = f"{ENV_PREFIX}{field.upper()}"
        got = item.get("input")
        if isinstance(got, SecretStr) or "key" in field:
            got = "***"
        elif isinstance(got, str):  # a URL or connection string may carry credentials
            got = redact_text(got)
        lines.append(f"{variable}: {item['msg']} (got {got!r})")
    return "invalid settings:\n  " + "\n  ".join(lines)


def load_settings() -> Settings:
    """Read and validate settings from the environment.

    Raises:
        SettingsError: naming each invalid ``KAIZEN_*`` variable, the reason and the value.
    """
    try:
        settings = Settings()
    except ValidationError as error:
        raise SettingsError(_describe(error)) from None
    return settings.model_copy(update={"home": settings.home.expanduser().absolute()})
