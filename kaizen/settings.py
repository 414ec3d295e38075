"""One settings object for the whole platform, read from ``KAIZEN_*`` environment variables.

Settings are read when a command starts (``load_settings``), never at import time, and an
invalid value stops the program with a message naming the variable and what was expected.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import AnyHttpUrl, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

ENV_PREFIX = "KAIZEN_"


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
    storage_backend: Literal["local"] = Field(
        default="local",
        description="Object store backend. 'local' is a folder under KAIZEN_HOME.",
    )
    feature_repo: Path = Field(
        default=Path("feature_repo"),
        description="Feast repository with the feature definitions.",
    )
    webhook_url: AnyHttpUrl | None = Field(
        default=None,
        description="If set, the notify step POSTs a JSON summary of every run here.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("webhook_url", mode="before")
    @classmethod
    def _empty_url_is_none(cls, value: object) -> object:
        return None if value == "" else value

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


def _describe(error: ValidationError) -> str:
    lines = []
    for item in error.errors():
        field = ".".join(str(part) for part in item["loc"]) or "?"
        variable = f"{ENV_PREFIX}{field.upper()}"
        got = item.get("input")
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


@lru_cache(maxsize=1)
def cached_settings() -> Settings:
    """Settings for long-running processes that read them once."""
    return load_settings()
