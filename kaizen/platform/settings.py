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
    slack_webhook_url: SecretStr = Field(
        default=SecretStr(""),
        description=(
            "Slack-compatible incoming webhook (Slack, Mattermost, a Teams workflow) that gets "
            "each notification as text and blocks; its path is a token, so it is a secret. "
            "Empty: off."
        ),
    )
    smtp_host: str | None = Field(
        default=None, description="SMTP server that emails each notification; unset: no email."
    )
    smtp_port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="SMTP port; default by security: 587 starttls, 465 ssl, 25 none.",
    )
    smtp_security: Literal["starttls", "ssl", "none"] = Field(
        default="starttls",
        description="TLS to the SMTP server: STARTTLS upgrade, TLS from the start, or none.",
    )
    smtp_user: str | None = Field(default=None, description="SMTP login; unset: no AUTH.")
    smtp_password: SecretStr = Field(default=SecretStr(""), description="SMTP password.")
    smtp_password_file: Path | None = Field(
        default=None,
        description="File holding the SMTP password (a mounted Secret); wins over SMTP_PASSWORD.",
    )
    smtp_from: str | None = Field(default=None, description="Sender address of the emails.")
    smtp_to: str = Field(default="", description="Recipients of the emails, comma-separated.")
    smtp_ca_file: Path | None = Field(
        default=None, description="CA bundle that signed the SMTP server's certificate."
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
    prediction_log_max_rows: int = Field(
        default=100_000,
        ge=0,
        description=(
            "Predictions the server buffers in memory for the prediction log; more are "
            "dropped and counted; 0 turns the log off."
        ),
    )
    prediction_log_flush_rows: int = Field(
        default=5_000, ge=1, description="Buffered predictions that trigger a write."
    )
    prediction_log_flush_seconds: float = Field(
        default=30.0, gt=0, description="Longest a prediction waits in memory before a write."
    )
    monitor_window_hours: float = Field(
        default=24.0, gt=0, description="Recent predictions `kaizen monitor` checks for drift."
    )
    monitor_label_window_hours: float = Field(
        default=168.0,
        gt=0,
        description="Predictions whose labels `kaizen monitor` judges live performance on.",
    )
    monitor_min_predictions: int = Field(
        default=200, ge=1, description="Fewest recent predictions before drift is judged."
    )
    monitor_min_labelled: int = Field(
        default=100, ge=1, description="Fewest labelled predictions before live metrics count."
    )
    monitor_min_fraud_labels: int = Field(
        default=10, ge=1, description="Fewest frauds among them before recall and ROC-AUC count."
    )
    monitor_psi_threshold: float = Field(
        default=0.2, gt=0, description="A feature whose PSI exceeds this has drifted."
    )
    monitor_score_psi_threshold: float = Field(
        default=0.2, gt=0, description="The prediction score has drifted above this PSI."
    )
    monitor_min_precision: float = Field(
        default=0.2, ge=0, le=1, description="Live precision below this is a breach."
    )
    monitor_min_recall: float = Field(
        default=0.5, ge=0, le=1, description="Live recall below this is a breach."
    )
    monitor_min_roc_auc: float = Field(
        default=0.8, ge=0, le=1, description="Live ROC-AUC below this is a breach."
    )
    retrain_target: Literal["none", "local", "kfp", "github"] = Field(
        default="none",
        description="What a monitoring breach starts: none, local, kfp or github.",
    )
    retrain_min_interval_seconds: float = Field(
        default=86_400.0, ge=0, description="Least time between two retrainings of one model."
    )
    retrain_source_uri: str = Field(
        default="",
        description="Transactions file a retraining trains on; empty: synthetic data.",
    )
    retrain_github_repository: str = Field(
        default="",
        pattern=r"^$|^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$",
        description="owner/name receiving the repository_dispatch (KAIZEN_RETRAIN_TARGET=github).",
    )
    retrain_github_token_file: Path | None = Field(
        default=None, description="File holding the GitHub token for the repository_dispatch."
    )
    retrain_github_api_url: str = Field(
        default="https://api.github.com",
        description="GitHub's REST API (GitHub Enterprise: its own).",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @model_validator(mode="before")
    @classmethod
    def _keys_from_files(cls, values: object) -> object:
        """Read ``KAIZEN_S3_*_KEY_FILE`` and ``KAIZEN_SMTP_PASSWORD_FILE`` into their value."""
        if not isinstance(values, dict):
            return values
        for name in ("s3_access_key", "s3_secret_key", "smtp_password"):
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

    @model_validator(mode="after")
    def _notification_channels_complete(self) -> Settings:
        """A channel is configured whole or not at all; nothing here prints a secret."""
        slack = self.slack_webhook_url.get_secret_value()
        if slack:
            parts = urlsplit(slack)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError(
                    f"{ENV_PREFIX}SLACK_WEBHOOK_URL: expected an http(s) URL such as "
                    f"https://hooks.slack.com/services/..., got scheme {parts.scheme!r}"
                )
        recipients = self.smtp_recipients
        if self.smtp_host is None:
            if recipients or self.smtp_user:
                raise ValueError(
                    f"{ENV_PREFIX}SMTP_TO/{ENV_PREFIX}SMTP_USER are set but "
                    f"{ENV_PREFIX}SMTP_HOST is not"
                )
            return self
        if not self.smtp_from or "@" not in self.smtp_from:
            raise ValueError(
                f"{ENV_PREFIX}SMTP_FROM: expected the sender's address when "
                f"{ENV_PREFIX}SMTP_HOST is set, got {self.smtp_from!r}"
            )
        if not recipients:
            raise ValueError(
                f"{ENV_PREFIX}SMTP_TO: expected comma-separated addresses when "
                f"{ENV_PREFIX}SMTP_HOST is set, got none"
            )
        malformed = [address for address in recipients if "@" not in address]
        if malformed:
            raise ValueError(f"{ENV_PREFIX}SMTP_TO: expected addresses, got {malformed!r}")
        password = bool(self.smtp_password.get_secret_value())
        if password != bool(self.smtp_user):
            raise ValueError(
                f"{ENV_PREFIX}SMTP_USER and {ENV_PREFIX}SMTP_PASSWORD (or _FILE) go together: "
                f"got only the {'password' if password else 'user'}"
            )
        if self.smtp_ca_file is not None and not self.smtp_ca_file.is_file():
            raise ValueError(f"{ENV_PREFIX}SMTP_CA_FILE: no such file {self.smtp_ca_file}")
        loopback = self.smtp_host in ("localhost", "127.0.0.1", "::1")
        if self.smtp_user and self.smtp_security == "none" and not loopback:
            raise ValueError(
                f"{ENV_PREFIX}SMTP_SECURITY=none would send the SMTP password in clear text to "
                f"{self.smtp_host}: use starttls or ssl"
            )
        return self

    @field_validator(
        "smtp_host",
        "smtp_port",
        "smtp_user",
        "smtp_password_file",
        "smtp_from",
        "smtp_ca_file",
        mode="before",
    )
    @classmethod
    def _empty_smtp_value_is_none(cls, value: object) -> object:
        # A ConfigMap key that is present but empty means "not set", as for the webhook.
        return None if value == "" else value

    @property
    def smtp_recipients(self) -> tuple[str, ...]:
        """``KAIZEN_SMTP_TO`` split on commas, blanks dropped."""
        return tuple(part.strip() for part in self.smtp_to.split(",") if part.strip())

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
