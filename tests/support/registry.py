"""A registered model's versions and aliases in a real MLflow store, without training a model.

For tests of what reads the registry's aliases (the deploy step): versions point at an empty
folder, so nothing here can be loaded or served. Creating MLflow's SQLite schema takes seconds,
so :func:`empty_store` makes it once and each test copies it (:meth:`AliasRegistry.create`).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings


def empty_store(folder: Path) -> Path:
    """An MLflow SQLite database with its schema and nothing else, in ``folder``."""
    from mlflow import MlflowClient

    path = folder / "mlflow.db"
    uri = f"sqlite:///{path}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.search_experiments(max_results=1)
    client.search_registered_models(max_results=1)
    return path


class AliasRegistry:
    """The settings' registered model, with versions added and aliases moved by hand."""

    def __init__(self, settings: Settings) -> None:
        from mlflow import MlflowClient

        uri = settings.tracking_uri
        self.client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        self.name = settings.model_name
        self.folder = settings.home / "exports"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.client.create_registered_model(self.name)

    @classmethod
    def create(cls, settings: Settings, template: Path) -> AliasRegistry:
        """Copy the ``template`` store where ``settings`` look for it and open the model."""
        settings.home.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(template, settings.home / "mlflow.db")
        return cls(settings)

    def add(self, *aliases: str) -> int:
        """A new version carrying ``aliases`` (moved from whichever version had them)."""
        source = str(self.folder)
        version = int(self.client.create_model_version(self.name, source=source).version)
        for alias in aliases:
            self.client.set_registered_model_alias(self.name, alias, str(version))
        return version

    def drop(self, alias: str) -> None:
        """Remove ``alias`` (as a canary rollback removes ``challenger``)."""
        self.client.delete_registered_model_alias(self.name, alias)
