"""The model registry: versions of one registered model, moved between aliases.

Aliases (MLflow registered-model aliases):

* ``challenger``: the latest version that passed the gate, waiting for promotion;
* ``champion``: the version that serves; the very first version becomes champion at once;
* ``previous-champion``: the champion before the last promotion, what ``rollback`` restores.

Each version's files (``model.keras``, its ``.sha256``, ``features.json``, ``metadata.json``)
are artifacts of the MLflow run that registered it, and its tags record the file's sha256 and
size, the content digest, the pipeline run, the training-data fingerprint, the feature
service and the evaluation metrics (``metric.test_<name>``). Loading a version verifies all of
it before Keras sees the file, and Keras loads with ``safe_mode=True``.

Correct with several writers on several hosts (pipeline runs sharing one MLflow tracking
server), without relying on a lock: the store lock of ``_backend`` is a file lock, shared only
by the processes of one host. What keeps the registry consistent across hosts:

* version numbers come from the tracking store, which assigns each one once;
* registering the same model (content digest) for the same pipeline run maps to one version:
  the lowest one; a registration that finds it created a duplicate at the same moment as
  another host withdraws its own;
* aliases are settled by rules over the versions, not by who wrote last: with no champion yet
  (no version ever promoted) the *lowest* version becomes champion, and ``challenger`` names
  the *newest* version unless that one was already judged (rejected, promoted, demoted or
  rolled back). Every write ends by reading the versions back and correcting the aliases
  until they match the rules (:meth:`ModelRegistry._settle_aliases`), so concurrent writers
  converge on the same state whatever order their writes land in;
* the canary's alias moves are conditional and idempotent
  (:meth:`ModelRegistry.apply_canary_decision`): applying a decision twice changes nothing.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from kaizen.platform.settings import Settings
from kaizen.platform.storage import sha256_file
from kaizen.registry._backend import (
    TAG_PIPELINE_RUN_ID,
    TAG_ROLE,
    TAG_ROUND,
    StoreConfig,
    client_for,
    iso,
    quote_filter_value,
    store_config,
    store_lock,
)
from kaizen.registry.tracking import (
    EVALUATION_METRIC_PREFIX,
    PARAM_DATA_FINGERPRINT,
    PARAM_FEATURE_SERVICE,
    ROLE_ROUND,
    TAG_REGISTERED_VERSION,
)
from kaizen.training.train import (
    FEATURES_FILE,
    METADATA_FILE,
    MODEL_FILE,
    SHA256_FILE,
    ModelFileError,
)

if TYPE_CHECKING:
    import keras

CHAMPION = "champion"
CHALLENGER = "challenger"
PREVIOUS_CHAMPION = "previous-champion"
ALIASES = (CHAMPION, CHALLENGER, PREVIOUS_CHAMPION)

# Version tags.
TAG_SHA256 = "kaizen.sha256"
TAG_SIZE = "kaizen.size_bytes"
TAG_CONTENT_DIGEST = "kaizen.content_digest"
TAG_FILES_SHA256 = "kaizen.files_sha256"
TAG_MLFLOW_RUN_ID = "kaizen.mlflow_run_id"
TAG_DATA_FINGERPRINT = "kaizen.data_fingerprint"
TAG_FEATURE_SERVICE = "kaizen.feature_service"
TAG_REGISTERED_AT = "kaizen.registered_at"
TAG_REGISTERED_BY = "kaizen.registered_by"
TAG_PROMOTED_AT = "kaizen.promoted_at"
TAG_PROMOTED_BY = "kaizen.promoted_by"
TAG_REPLACED_VERSION = "kaizen.replaced_version"
TAG_DEMOTED_AT = "kaizen.demoted_at"
TAG_DEMOTED_BY = "kaizen.demoted_by"
TAG_ROLLED_BACK_AT = "kaizen.rolled_back_at"
TAG_ROLLED_BACK_BY = "kaizen.rolled_back_by"
TAG_REJECTED_REASON = "kaizen.rejected_reason"
TAG_REJECTED_AT = "kaizen.rejected_at"
TAG_REJECTED_BY = "kaizen.rejected_by"
METRIC_TAG_PREFIX = "metric."

# The export files a version is made of, in the order they are logged.
MODEL_FILES = (MODEL_FILE, SHA256_FILE, FEATURES_FILE, METADATA_FILE)

#: ``kaizen.promoted_by`` of the version that became champion by being registered first.
FIRST_VERSION_ACTOR = "first version"
#: How many read-correct rounds :meth:`ModelRegistry._settle_aliases` allows before giving up.
SETTLE_ROUNDS = 20

#: What :meth:`ModelRegistry.apply_canary_decision` found: it moved the aliases, they were
#: moved already (by another replica), or the registry moved on (the decision no longer applies).
CanaryOutcome = Literal["applied", "already applied", "superseded"]

logger = logging.getLogger("kaizen.registry.models")


class RegistryError(RuntimeError):
    """A registry operation that cannot be done as asked."""


class ModelVersionNotFoundError(RegistryError, LookupError):
    """No such version or alias in the registered model."""


class NoPreviousChampionError(RegistryError):
    """A rollback with no previous champion to restore."""


class ModelIntegrityError(ModelFileError):
    """A registered version's files fail verification: refused, never loaded."""


@dataclass(frozen=True)
class ModelVersionInfo:
    """One registered model version.

    Attributes:
        name: the registered model.
        version: the version number (1, 2, ...).
        aliases: the aliases pointing at it (``champion``, ``challenger``, ...).
        run_id: the MLflow run holding its files.
        source: URI of its files (``model.keras`` and the rest).
        created_at: registration time, ISO 8601 UTC.
        tags: every version tag.
        existing: True when ``register_challenger`` found this version already registered.
    """

    name: str
    version: int
    aliases: tuple[str, ...]
    run_id: str
    source: str
    created_at: str | None
    tags: dict[str, str] = field(default_factory=dict)
    existing: bool = False

    @property
    def sha256(self) -> str:
        """sha256 of ``model.keras`` recorded at registration."""
        return self.tags.get(TAG_SHA256, "")

    @property
    def content_digest(self) -> str:
        """The model's content digest (config and weights, not its save date)."""
        return self.tags.get(TAG_CONTENT_DIGEST, "")

    @property
    def pipeline_run_id(self) -> str:
        """The pipeline run that produced it ('' if registered outside a pipeline)."""
        return self.tags.get(TAG_PIPELINE_RUN_ID, "")

    @property
    def metrics(self) -> dict[str, float]:
        """Evaluation metrics recorded at registration (``test_roc_auc``, ...)."""
        values = {}
        for key, value in self.tags.items():
            if key.startswith(METRIC_TAG_PREFIX):
                try:
                    values[key.removeprefix(METRIC_TAG_PREFIX)] = float(value)
                except ValueError:
                    continue
        return values

    @property
    def label(self) -> str:
        """``fraud-detector version 3 (champion)``: how errors and messages name it."""
        aliases = f" ({', '.join(self.aliases)})" if self.aliases else ""
        return f"{self.name} version {self.version}{aliases}"

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict, with ``sha256``, ``pipeline_run_id`` and ``metrics`` spelled out."""
        return {
            "name": self.name,
            "version": self.version,
            "aliases": list(self.aliases),
            "run_id": self.run_id,
            "source": self.source,
            "created_at": self.created_at,
            "sha256": self.sha256,
            "content_digest": self.content_digest,
            "pipeline_run_id": self.pipeline_run_id,
            "metrics": self.metrics,
            "tags": dict(self.tags),
            "existing": self.existing,
        }


@dataclass(frozen=True)
class PromotionResult:
    """The outcome of ``promote`` or ``rollback``.

    Attributes:
        name: the registered model.
        champion: the version that is champion now.
        previous_champion: the version it replaced (None if there was no champion).
        changed: False when the version already was champion (nothing was done).
        actor: who asked.
        at: when, ISO 8601 UTC.
    """

    name: str
    champion: int
    previous_champion: int | None
    changed: bool
    actor: str
    at: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "champion": self.champion,
            "previous_champion": self.previous_champion,
            "changed": self.changed,
            "actor": self.actor,
            "at": self.at,
        }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _default_actor() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry in some containers
        return os.environ.get("USER", "unknown")


class ModelRegistry:
    """The registered model ``settings.model_name`` in the settings' MLflow store.

    Args:
        settings: platform settings.
        model_name: overrides ``settings.model_name``.
    """

    def __init__(self, settings: Settings, *, model_name: str | None = None) -> None:
        config = store_config(settings)
        self._config: StoreConfig = replace(config, model_name=model_name) if model_name else config
        self.name = self._config.model_name

    @cached_property
    def _client(self) -> Any:
        return client_for(self._config)

    # ----- reading ---------------------------------------------------------------------

    def _aliases(self) -> dict[int, list[str]]:
        from mlflow.exceptions import MlflowException

        try:
            model = self._client.get_registered_model(self.name)
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return {}
            raise
        by_version: dict[int, list[str]] = {}
        for alias, version in dict(model.aliases or {}).items():
            by_version.setdefault(int(version), []).append(str(alias))
        return by_version

    def alias_versions(self) -> dict[str, int]:
        """Every alias and the version it names, in one registry read.

        The cheap question a server polling for alias moves asks (one query, where
        :meth:`by_alias` reads the version and its tags too).

        Returns:
            ``{"champion": 3, "challenger": 4, ...}``; empty before the first registration.
        """
        return {alias: version for version, names in self._aliases().items() for alias in names}

    def _info(self, version: Any, aliases: dict[int, list[str]] | None = None) -> ModelVersionInfo:
        aliases = self._aliases() if aliases is None else aliases
        number = int(version.version)
        return ModelVersionInfo(
            name=self.name,
            version=number,
            aliases=tuple(alias for alias in ALIASES if alias in aliases.get(number, []))
            + tuple(sorted(set(aliases.get(number, [])) - set(ALIASES))),
            run_id=str(version.run_id or ""),
            source=str(version.source),
            created_at=iso(version.creation_timestamp),
            tags=dict(version.tags or {}),
        )

    def _alias_version(self, alias: str) -> int | None:
        for version, names in self._aliases().items():
            if alias in names:
                return version
        return None

    def versions(self) -> list[ModelVersionInfo]:
        """Every version, oldest first."""
        from mlflow.exceptions import MlflowException

        try:
            found = self._client.search_model_versions(
                f"name = {quote_filter_value(self.name, 'model name')}",
                max_results=10_000,
                order_by=["version_number ASC"],
            )
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return []
            raise
        aliases = self._aliases()
        return [self._info(version, aliases) for version in found]

    def get(self, ref: int | str) -> ModelVersionInfo:
        """A version by number (``3``, ``"3"``, ``"v3"``) or alias (``"champion"``).

        Raises:
            ModelVersionNotFoundError: no such version or alias, naming what exists.
        """
        from mlflow.exceptions import MlflowException

        number = self._resolve(ref)
        try:
            version = self._client.get_model_version(self.name, str(number))
        except MlflowException as error:
            if error.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                raise self._not_found(f"version {number}") from None
            raise
        return self._info(version)

    def _resolve(self, ref: int | str) -> int:
        if isinstance(ref, bool):
            raise TypeError(f"a model version is a number or an alias, got {ref!r}")
        if isinstance(ref, int):
            return ref
        text = str(ref).strip()
        digits = text[1:] if text[:1] in ("v", "V") else text
        if digits.isdigit():
            return int(digits)
        alias = text.removeprefix("@")
        number = self._alias_version(alias)
        if number is None:
            raise self._not_found(f"alias {alias!r}")
        return number

    def _not_found(self, what: str) -> ModelVersionNotFoundError:
        aliases = self._aliases()
        versions = [info.version for info in self.versions()]
        known = ", ".join(
            f"{alias}={version}" for version, names in sorted(aliases.items()) for alias in names
        )
        return ModelVersionNotFoundError(
            f"registered model {self.name!r} has no {what}; versions: "
            f"{versions or 'none'}; aliases: {known or 'none'}"
        )

    def by_alias(self, alias: str) -> ModelVersionInfo | None:
        """The version ``alias`` points at, or None."""
        number = self._alias_version(alias)
        return None if number is None else self.get(number)

    # ----- registering -------------------------------------------------------------------

    def register_challenger(
        self,
        model_dir: str | os.PathLike[str],
        *,
        run_id: str,
        tags: Mapping[str, object] | None = None,
    ) -> ModelVersionInfo:
        """Register an exported model as a new version with alias ``challenger``.

        The model files are logged as artifacts of ``run_id`` (under
        ``models/<digest>/<files digest>/``) and the version points at them. Its tags: sha256
        and size of ``model.keras``, content digest, pipeline run and MLflow run, round,
        training-data fingerprint and feature service (from the pipeline run's params), every
        ``test_*`` metric of the run (``metric.test_<name>``), then ``tags``. The first
        version of the model also becomes ``champion``; ``challenger`` names the newest
        version (see the module docstring for how both hold with concurrent registrations).

        Registering the same model (same content digest) from the same pipeline run again
        returns the existing version (``existing=True``) and changes nothing, also when two
        hosts register it at the same moment (both get the lower of the two numbers, the
        other is withdrawn).

        Args:
            model_dir: a ``kaizen.training.train.train`` export folder.
            run_id: the MLflow run it belongs to; pass the round run
                (``PipelineRunTracker.round_run_id(k)``) so lineage finds the tuning round.
            tags: extra version tags.

        Returns:
            The registered (or already registered) version.

        Raises:
            ModelFileError: the export is incomplete, damaged or not a Keras archive.
            RegistryError: ``run_id`` names no MLflow run.
        """

        if not Path(model_dir).is_dir():
            raise ModelFileError(f"cannot register {model_dir}: no such model export folder")
        with tempfile.TemporaryDirectory(prefix="kaizen-register-") as scratch:
            # Checked and logged from one private copy: what was hashed is what is stored.
            folder = Path(scratch)
            for name in MODEL_FILES:
                source_file = Path(model_dir) / name
                if source_file.is_file():
                    shutil.copyfile(source_file, folder / name)
            return self._register_copy(Path(model_dir), folder, run_id=run_id, tags=tags)

    def _register_copy(
        self,
        model_dir: Path,
        folder: Path,
        *,
        run_id: str,
        tags: Mapping[str, object] | None,
    ) -> ModelVersionInfo:
        from mlflow.exceptions import MlflowException

        sha256, size, digest = _check_export(folder, shown=model_dir)
        try:
            run = self._client.get_run(run_id)
        except MlflowException as error:
            from kaizen.platform.redaction import redact_uri

            raise RegistryError(
                f"cannot register {model_dir}: no MLflow run {run_id!r} in "
                f"{redact_uri(self._config.tracking_uri)}"
            ) from error
        run_tags = dict(run.data.tags)
        pipeline_run_id = run_tags.get(TAG_PIPELINE_RUN_ID, "")
        parent = run
        if run_tags.get(TAG_ROLE) == ROLE_ROUND and run_tags.get("mlflow.parentRunId"):
            parent = self._client.get_run(run_tags["mlflow.parentRunId"])
        version_tags: dict[str, str] = {
            TAG_SHA256: sha256,
            TAG_SIZE: str(size),
            TAG_CONTENT_DIGEST: digest,
            TAG_FILES_SHA256: json.dumps(
                {name: sha256_file(folder / name) for name in MODEL_FILES}, sort_keys=True
            ),
            TAG_PIPELINE_RUN_ID: pipeline_run_id,
            TAG_MLFLOW_RUN_ID: run_id,
            TAG_REGISTERED_AT: _now(),
            TAG_REGISTERED_BY: _default_actor(),
        }
        if TAG_ROUND in run_tags:
            version_tags[TAG_ROUND] = run_tags[TAG_ROUND]
        for param, tag in (
            (PARAM_DATA_FINGERPRINT, TAG_DATA_FINGERPRINT),
            (PARAM_FEATURE_SERVICE, TAG_FEATURE_SERVICE),
        ):
            if param in parent.data.params:
                version_tags[tag] = parent.data.params[param]
        for name, value in run.data.metrics.items():
            if name.startswith(EVALUATION_METRIC_PREFIX):
                version_tags[METRIC_TAG_PREFIX + name] = repr(float(value))
        version_tags.update({str(key): str(value) for key, value in (tags or {}).items()})

        # The store lock serializes this host's writers only; nothing below relies on it.
        with store_lock(self._config):
            existing = self._find_registered(digest, pipeline_run_id, run_id)
            if existing is None:
                self._ensure_registered_model()
                # Named by the files themselves: a concurrent registration of other bytes
                # never overwrites the files this version's sha256 tags describe.
                files_digest = hashlib.sha256(
                    version_tags[TAG_FILES_SHA256].encode("utf-8")
                ).hexdigest()
                artifact_path = f"models/{digest[:16]}/{files_digest[:16]}"
                for name in MODEL_FILES:
                    self._client.log_artifact(run_id, os.fspath(folder / name), artifact_path)
                source = f"{run.info.artifact_uri.rstrip('/')}/{artifact_path}"
                created = self._client.create_model_version(
                    self.name, source, run_id=run_id, tags=version_tags
                )
                number = int(created.version)
                # Another host may have registered the same model for the same run at the
                # same moment: the lowest version is the one both keep.
                canonical = self._find_registered(digest, pipeline_run_id, run_id)
                if canonical is not None and canonical.version < number:
                    logger.info(
                        "%s version %d duplicates version %d (same model, same pipeline run, "
                        "registered concurrently); withdrawn",
                        self.name,
                        number,
                        canonical.version,
                    )
                    self._client.delete_model_version(self.name, str(number))
                    existing, number = canonical, canonical.version
            else:
                number = existing.version
            # Also finishes a registration interrupted before its aliases were set.
            self._settle_aliases()
            for marked in {run_id, str(parent.info.run_id)}:
                self._set_tag_racing(marked, TAG_REGISTERED_VERSION, str(number))
            return replace(self.get(number), existing=existing is not None)

    def _set_tag_racing(self, run_id: str, key: str, value: str) -> None:
        """``set_tag`` that survives another host tagging the same run at the same moment.

        MLflow's tracking server upserts a tag by reading then inserting; two hosts tagging
        one run at once make the second insert fail with a unique-constraint error, although
        the tag is there. Tagging again then updates the row; the last value wins, as with
        any tag.
        """
        for attempt in range(1, 6):
            try:
                self._client.set_tag(run_id, key, value)
                return
            except Exception as error:
                if "UNIQUE constraint" not in str(error) and "IntegrityError" not in str(error):
                    raise
                if attempt == 5:
                    raise
                time.sleep(0.1 * attempt)

    def _settle_aliases(self) -> None:
        """Set ``champion`` (when there is none yet) and ``challenger`` by the rules.

        * No champion alias and no version ever promoted: the lowest version becomes
          champion (promoted by ``first version``).
        * ``challenger`` names the newest version if :func:`_awaits_judgement`, else nothing.

        Both are functions of the versions and their tags, never of who wrote last. Each
        round reads the registry and corrects what differs; it stops after a round that
        found nothing to correct. As every writer ends with such a round, the last writer
        to read sees every other writer's changes, so concurrent writers on several hosts
        leave the same aliases as serialized writers would.

        Raises:
            RegistryError: the aliases still changed after :data:`SETTLE_ROUNDS` rounds.
        """
        from mlflow.exceptions import MlflowException

        for _ in range(SETTLE_ROUNDS):
            versions = self.versions()
            if not versions:
                return
            current = {alias: info.version for info in versions for alias in info.aliases}
            corrected = False
            try:
                if CHAMPION not in current and not any(
                    TAG_PROMOTED_AT in info.tags for info in versions
                ):
                    first = str(versions[0].version)
                    # Alias before tags: whoever sees the tag also sees the alias.
                    self._client.set_registered_model_alias(self.name, CHAMPION, first)
                    self._client.set_model_version_tag(self.name, first, TAG_PROMOTED_AT, _now())
                    self._client.set_model_version_tag(
                        self.name, first, TAG_PROMOTED_BY, FIRST_VERSION_ACTOR
                    )
                    corrected = True
                newest = versions[-1]
                wanted = newest.version if _awaits_judgement(newest) else None
                if current.get(CHALLENGER) != wanted:
                    if wanted is None:
                        self._client.delete_registered_model_alias(self.name, CHALLENGER)
                    else:
                        self._client.set_registered_model_alias(self.name, CHALLENGER, str(wanted))
                    corrected = True
            except MlflowException as error:
                # A version or alias went away meanwhile (a duplicate withdrawn, an alias
                # removed by another writer): read again.
                if error.error_code not in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    raise
                corrected = True
            if not corrected:
                return
        raise RegistryError(
            f"the aliases of {self.name!r} still changed after {SETTLE_ROUNDS} rounds of "
            f"corrections; other writers keep moving them, try again"
        )

    def _find_registered(
        self, digest: str, pipeline_run_id: str, run_id: str
    ) -> ModelVersionInfo | None:
        from mlflow.exceptions import MlflowException

        same_origin = (
            f"tags.`{TAG_PIPELINE_RUN_ID}` = {quote_filter_value(pipeline_run_id, 'run id')}"
            if pipeline_run_id
            else f"tags.`{TAG_MLFLOW_RUN_ID}` = {quote_filter_value(run_id, 'run id')}"
        )
        query = (
            f"name = {quote_filter_value(self.name, 'model name')} AND "
            f"tags.`{TAG_CONTENT_DIGEST}` = '{digest}' AND {same_origin}"
        )
        try:
            found = self._client.search_model_versions(query, order_by=["version_number ASC"])
        except MlflowException as error:
            if error.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise
        return self._info(found[0]) if found else None

    def _ensure_registered_model(self) -> None:
        from mlflow.exceptions import MlflowException

        try:
            self._client.get_registered_model(self.name)
        except MlflowException as error:
            if error.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                self._client.create_registered_model(
                    self.name, description="Kaizen card-fraud model: champion/challenger versions."
                )
            except MlflowException as created:
                # Another host created it between our read and our write.
                if created.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise

    # ----- promotion -------------------------------------------------------------------

    def promote(self, ref: int | str, *, actor: str | None = None) -> PromotionResult:
        """Make a version ``champion``; the champion it replaces becomes ``previous-champion``.

        The promoted version's files are verified first (sha256 and size against its tags),
        so a damaged version never becomes champion. ``challenger`` is cleared when it
        pointed at the promoted version. Promoting the current champion changes nothing.

        Args:
            ref: a version number or alias (``challenger``).
            actor: who promotes (recorded in tags); defaults to the OS user.

        Returns:
            The new and previous champion.

        Raises:
            ModelVersionNotFoundError: no such version.
            ModelIntegrityError: the version's files fail verification.
        """
        who = actor or _default_actor()
        with store_lock(self._config):
            target = self.get(ref)
            current = self._alias_version(CHAMPION)
            if current == target.version:
                return PromotionResult(self.name, target.version, None, False, who, _now())
            with tempfile.TemporaryDirectory(prefix="kaizen-verify-") as scratch:
                self._download_verified(target, Path(scratch))
            at = _now()
            number = str(target.version)
            self._client.set_registered_model_alias(self.name, CHAMPION, number)
            self._client.set_model_version_tag(self.name, number, TAG_PROMOTED_AT, at)
            self._client.set_model_version_tag(self.name, number, TAG_PROMOTED_BY, who)
            self._client.set_model_version_tag(
                self.name, number, TAG_REPLACED_VERSION, "" if current is None else str(current)
            )
            if current is not None:
                self._client.set_registered_model_alias(self.name, PREVIOUS_CHAMPION, str(current))
                self._client.set_model_version_tag(self.name, str(current), TAG_DEMOTED_AT, at)
                self._client.set_model_version_tag(self.name, str(current), TAG_DEMOTED_BY, who)
            if self._alias_version(CHALLENGER) == target.version:
                self._client.delete_registered_model_alias(self.name, CHALLENGER)
            # That conditional removal may have raced with a registration on another host.
            self._settle_aliases()
            return PromotionResult(self.name, target.version, current, True, who, at)

    def rollback(self, *, actor: str | None = None) -> PromotionResult:
        """Restore ``previous-champion`` as champion.

        The version rolled back from is tagged with who and when. ``previous-champion`` then
        moves to the version the restored one had replaced when it was promoted (so repeated
        rollbacks walk back the promotion history), or is removed when there is none.

        Args:
            actor: who rolls back; defaults to the OS user.

        Returns:
            The restored champion and the version it replaced.

        Raises:
            NoPreviousChampionError: no previous champion is recorded.
        """
        who = actor or _default_actor()
        with store_lock(self._config):
            previous = self._alias_version(PREVIOUS_CHAMPION)
            current = self._alias_version(CHAMPION)
            if previous is None:
                now = f"version {current}" if current is not None else "no version"
                raise NoPreviousChampionError(
                    f"cannot roll back {self.name!r}: no previous champion is recorded (the "
                    f"champion is {now}); promote a version instead"
                )
            restored = self.get(previous)
            with tempfile.TemporaryDirectory(prefix="kaizen-verify-") as scratch:
                self._download_verified(restored, Path(scratch))
            at = _now()
            self._client.set_registered_model_alias(self.name, CHAMPION, str(previous))
            self._client.set_model_version_tag(self.name, str(previous), TAG_PROMOTED_AT, at)
            self._client.set_model_version_tag(
                self.name, str(previous), TAG_PROMOTED_BY, f"{who} (rollback)"
            )
            if current is not None:
                self._client.set_model_version_tag(self.name, str(current), TAG_ROLLED_BACK_AT, at)
                self._client.set_model_version_tag(self.name, str(current), TAG_ROLLED_BACK_BY, who)
            earlier = restored.tags.get(TAG_REPLACED_VERSION, "")
            known = {info.version for info in self.versions()}
            if earlier.isdigit() and int(earlier) in known and int(earlier) != previous:
                self._client.set_registered_model_alias(self.name, PREVIOUS_CHAMPION, earlier)
            else:
                self._client.delete_registered_model_alias(self.name, PREVIOUS_CHAMPION)
            return PromotionResult(self.name, previous, current, True, who, at)

    def reject_challenger(
        self, version: int | str, reason: str, *, actor: str | None = None
    ) -> ModelVersionInfo:
        """Withdraw a challenger that failed its canary: the alias goes, the reason stays.

        Only the version that is still ``challenger`` is rejected (a canary decision about
        a challenger that was replaced meanwhile must not remove the new one). The
        ``challenger`` alias is removed and the version is tagged with the reason, when and
        by whom; the version itself stays registered, so its lineage remains readable.

        Args:
            version: The version number the caller judged.
            reason: Why it was rejected (recorded in ``kaizen.rejected_reason``).
            actor: Who rejects (``canary`` for the router); defaults to the OS user.

        Returns:
            The rejected version, without the ``challenger`` alias and with its tags.

        Raises:
            ValueError: ``reason`` is empty.
            ModelVersionNotFoundError: no such version.
            RegistryError: the version is the champion, or is not the challenger.
        """
        if not reason or not reason.strip():
            raise ValueError("a rejection needs a reason (recorded on the version); got none")
        who = actor or _default_actor()
        with store_lock(self._config):
            target = self.get(version)
            number = target.version
            current_champion = self._alias_version(CHAMPION)
            current_challenger = self._alias_version(CHALLENGER)
            if number == current_champion:
                raise RegistryError(
                    f"cannot reject {target.label}: it is the champion; promote another "
                    f"version or roll back instead"
                )
            if number != current_challenger:
                now = (
                    f"the challenger is version {current_challenger}"
                    if current_challenger is not None
                    else "there is no challenger"
                )
                raise RegistryError(
                    f"cannot reject {target.label}: it is not the challenger ({now})"
                )
            # MLflow refuses tag values over 5000 characters; a reason is a sentence or two.
            tags = {
                TAG_REJECTED_REASON: reason.strip()[:4000],
                TAG_REJECTED_AT: _now(),
                TAG_REJECTED_BY: who,
            }
            # Tags first: a crash in between leaves a challenger that a retry rejects, never
            # a withdrawn one without its reason.
            for key, value in tags.items():
                self._client.set_model_version_tag(self.name, str(number), key, value)
            self._client.delete_registered_model_alias(self.name, CHALLENGER)
            # A registration on another host may have moved the alias between the check
            # above and the removal: put it back on the newest version if that one waits.
            self._settle_aliases()
            return self.get(number)

    def apply_canary_decision(
        self,
        version: int,
        action: Literal["promote", "rollback"],
        reason: str,
        *,
        judged_against: int,
        actor: str,
    ) -> CanaryOutcome:
        """Carry out a canary's decision about challenger ``version``, idempotently.

        Every replica of a server applies the same recorded decision (see
        :mod:`kaizen.serving.canary`); whichever comes first moves the aliases, the others
        find them moved and change nothing.

        * ``promote``: ``champion`` := ``version`` (through :meth:`promote`, which removes
          the challenger alias only if it still names ``version``), but only while the
          challenger alias still names it and the champion is still ``judged_against``.
        * ``rollback``: the challenger alias is removed only if it still names ``version``,
          and the version is tagged rejected (:meth:`reject_challenger`).

        Args:
            version: The challenger version the decision is about.
            action: ``promote`` or ``rollback``.
            reason: Why (recorded on a rejected version).
            judged_against: The champion version the challenger was compared with.
            actor: Who decided (``canary``).

        Returns:
            ``applied`` (this call moved the aliases), ``already applied`` (they were moved
            before: nothing changed) or ``superseded`` (the aliases moved on meanwhile, for
            instance a newer challenger or another champion: nothing changed).

        Raises:
            ValueError: ``action`` is neither ``promote`` nor ``rollback``.
            ModelVersionNotFoundError: no such version.
            ModelIntegrityError: a promoted version's files fail verification.
        """
        if action not in ("promote", "rollback"):
            raise ValueError(f"a canary decision is 'promote' or 'rollback', got {action!r}")
        info = self.get(version)
        aliases = self.alias_versions()
        if action == "promote":
            if aliases.get(CHAMPION) == version:
                return "already applied"
            if aliases.get(CHALLENGER) != version or aliases.get(CHAMPION) != judged_against:
                return "superseded"
            result = self.promote(version, actor=actor)
            return "applied" if result.changed else "already applied"
        if TAG_REJECTED_AT in info.tags and aliases.get(CHALLENGER) != version:
            return "already applied"
        if aliases.get(CHALLENGER) != version:
            return "superseded"
        try:
            self.reject_challenger(version, reason, actor=actor)
        except RegistryError:
            # Another replica rejected it between our read and our write.
            if TAG_REJECTED_AT in self.get(version).tags:
                return "already applied"
            raise
        return "applied"

    # ----- loading -----------------------------------------------------------------------

    def download(
        self, ref: int | str, dst_dir: str | os.PathLike[str]
    ) -> tuple[Path, ModelVersionInfo]:
        """Download a version's files into ``dst_dir`` and verify them (no Keras involved).

        Args:
            ref: version number or alias.
            dst_dir: folder to write ``model.keras``, its sha256, ``features.json`` and
                ``metadata.json`` to; created if missing.

        Returns:
            The folder holding the verified files, and the version.

        Raises:
            ModelVersionNotFoundError: no such version or alias.
            ModelIntegrityError: a file is missing, truncated, or differs from its recorded
                sha256; the message names the version.
        """
        info = self.get(ref)
        return self._download_verified(info, Path(dst_dir)), info

    def _download_verified(self, info: ModelVersionInfo, dst_dir: Path) -> Path:
        import mlflow.artifacts

        dst_dir.mkdir(parents=True, exist_ok=True)
        # Verified in a scratch folder first: dst_dir never holds a file that failed a check.
        with tempfile.TemporaryDirectory(prefix=".kaizen-download-", dir=dst_dir) as scratch:
            try:
                # The tracking URI is passed, not taken from MLflow's global state: the source
                # of a version logged through a tracking server is ``mlflow-artifacts:/...``,
                # which only that server resolves (a model server never sets the global URI).
                local = Path(
                    mlflow.artifacts.download_artifacts(
                        artifact_uri=info.source,
                        dst_path=scratch,
                        tracking_uri=self._config.tracking_uri,
                    )
                )
            except Exception as error:
                raise ModelIntegrityError(
                    f"refusing to load {info.label}: its files cannot be read from "
                    f"{info.source} ({error})"
                ) from error
            _verify_files(info, local)
            for name in MODEL_FILES:
                if (local / name).is_file():
                    os.replace(local / name, dst_dir / name)
        return dst_dir

    def load(self, ref: int | str) -> tuple[keras.Model, ModelVersionInfo]:
        """Download, verify and load a version with Keras ``safe_mode``.

        Args:
            ref: version number or alias (``champion``).

        Returns:
            The compiled Keras model and the version.

        Raises:
            ModelVersionNotFoundError: no such version or alias.
            ModelIntegrityError: tampered, truncated or foreign-format files, or an archive
                ``safe_mode`` refuses (a Lambda layer); the message names the version.
        """
        from kaizen.training.train import load_model

        info = self.get(ref)
        scratch = Path(tempfile.mkdtemp(prefix="kaizen-model-"))
        try:
            local = self._download_verified(info, scratch / "files")
            try:
                model = load_model(local / MODEL_FILE, expected_sha256=info.sha256)
            except (ModelFileError, ValueError) as error:
                # Name the stored file, not the scratch copy that is gone once this returns.
                problem = str(error).replace(
                    os.fspath(local / MODEL_FILE), f"{info.source}/{MODEL_FILE}"
                )
                raise ModelIntegrityError(f"refusing to load {info.label}: {problem}") from error
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
        return model, info


def _awaits_judgement(info: ModelVersionInfo) -> bool:
    """True for a version nobody has judged yet: it may be (or stay) the challenger.

    A version is judged once it was rejected, demoted or rolled back, or promoted other than
    as the first version (which is champion and challenger at once).
    """
    tags = info.tags
    if TAG_REJECTED_AT in tags or TAG_DEMOTED_AT in tags or TAG_ROLLED_BACK_AT in tags:
        return False
    return TAG_PROMOTED_AT not in tags or tags.get(TAG_PROMOTED_BY) == FIRST_VERSION_ACTOR


def _check_export(folder: Path, shown: Path) -> tuple[str, int, str]:
    """sha256, size and content digest of an export; refuse one that is incomplete or damaged.

    ``folder`` holds the files; ``shown`` is the export folder the messages name.
    """
    from kaizen.training.digest import model_content_digest

    missing = [name for name in MODEL_FILES if not (folder / name).is_file()]
    if missing:
        raise ModelFileError(
            f"cannot register {shown}: missing {', '.join(missing)} (expected the files "
            f"kaizen.training.train.train exports: {', '.join(MODEL_FILES)})"
        )
    model = folder / MODEL_FILE
    sha256 = sha256_file(model)
    sidecar = _read_sidecar(folder / SHA256_FILE)
    if sidecar != sha256:
        raise ModelFileError(
            f"cannot register {shown}: {MODEL_FILE} has sha256 {sha256} but {SHA256_FILE} "
            f"says {sidecar or 'nothing'}; the export was modified after training"
        )
    try:
        digest = model_content_digest(model)
    except ValueError as error:
        problem = str(error).replace(os.fspath(model), os.fspath(shown / MODEL_FILE))
        raise ModelFileError(f"cannot register {shown}: {problem}") from None
    return sha256, model.stat().st_size, digest


def _read_sidecar(path: Path) -> str:
    text = path.read_text(encoding="utf-8", errors="replace").strip()
    return text.split()[0].lower() if text else ""


def _verify_files(info: ModelVersionInfo, local: Path) -> None:
    refuse = f"refusing to load {info.label}"
    missing = [name for name in MODEL_FILES if not (local / name).is_file()]
    if missing:
        raise ModelIntegrityError(f"{refuse}: {', '.join(missing)} missing from {info.source}")
    if not info.sha256:
        raise ModelIntegrityError(
            f"{refuse}: the version has no {TAG_SHA256} tag, so its file cannot be verified"
        )
    model = local / MODEL_FILE
    size = model.stat().st_size
    recorded = info.tags.get(TAG_SIZE, "")
    if recorded.isdigit() and size != int(recorded):
        problem = "truncated" if size < int(recorded) else "grown"
        raise ModelIntegrityError(
            f"{refuse}: {MODEL_FILE} is {problem}: {size} bytes, registered with {recorded} "
            f"bytes ({info.source})"
        )
    actual = sha256_file(model)
    if actual != info.sha256:
        raise ModelIntegrityError(
            f"{refuse}: {MODEL_FILE} sha256 mismatch: registered {info.sha256}, file has "
            f"{actual}; the file was modified or replaced ({info.source})"
        )
    sidecar = _read_sidecar(local / SHA256_FILE)
    if sidecar != info.sha256:
        raise ModelIntegrityError(
            f"{refuse}: {SHA256_FILE} says {sidecar or 'nothing'} but the registry recorded "
            f"{info.sha256}"
        )
    # features.json decides which column feeds which input: a reordered list scores garbage.
    try:
        recorded_files = json.loads(info.tags.get(TAG_FILES_SHA256) or "{}")
    except json.JSONDecodeError:
        raise ModelIntegrityError(f"{refuse}: its {TAG_FILES_SHA256} tag is not JSON") from None
    for name, expected in dict(recorded_files).items():
        if name in MODEL_FILES and sha256_file(local / name) != expected:
            raise ModelIntegrityError(
                f"{refuse}: {name} differs from the registered file (sha256 {expected}); it "
                f"was modified or replaced ({info.source})"
            )


# Module-level functions over the registry the given settings name.


def register_challenger(
    model_dir: str | os.PathLike[str],
    *,
    run_id: str,
    tags: Mapping[str, object] | None = None,
    settings: Settings,
) -> ModelVersionInfo:
    """Register an export as a new ``challenger`` version (see
    :meth:`ModelRegistry.register_challenger`)."""
    return ModelRegistry(settings).register_challenger(model_dir, run_id=run_id, tags=tags)


def promote(version: int | str, *, actor: str | None = None, settings: Settings) -> PromotionResult:
    """Make ``version`` champion (see :meth:`ModelRegistry.promote`)."""
    return ModelRegistry(settings).promote(version, actor=actor)


def rollback(*, actor: str | None = None, settings: Settings) -> PromotionResult:
    """Restore the previous champion (see :meth:`ModelRegistry.rollback`)."""
    return ModelRegistry(settings).rollback(actor=actor)


def reject_challenger(
    version: int | str,
    reason: str,
    *,
    actor: str | None = None,
    settings: Settings,
) -> ModelVersionInfo:
    """Withdraw the challenger after a failed canary (see
    :meth:`ModelRegistry.reject_challenger`)."""
    return ModelRegistry(settings).reject_challenger(version, reason, actor=actor)


def champion(settings: Settings) -> ModelVersionInfo | None:
    """The champion version, or None before the first registration."""
    return ModelRegistry(settings).by_alias(CHAMPION)


def challenger(settings: Settings) -> ModelVersionInfo | None:
    """The challenger version, or None."""
    return ModelRegistry(settings).by_alias(CHALLENGER)


def previous_champion(settings: Settings) -> ModelVersionInfo | None:
    """The champion before the last promotion, or None."""
    return ModelRegistry(settings).by_alias(PREVIOUS_CHAMPION)


def get_model_version(ref: int | str, settings: Settings) -> ModelVersionInfo:
    """A version by number or alias (see :meth:`ModelRegistry.get`)."""
    return ModelRegistry(settings).get(ref)


def download_model_version(
    ref: int | str, dst_dir: str | os.PathLike[str], settings: Settings
) -> tuple[Path, ModelVersionInfo]:
    """Download and verify a version's files (see :meth:`ModelRegistry.download`)."""
    return ModelRegistry(settings).download(ref, dst_dir)


def load_model_version(ref: int | str, settings: Settings) -> tuple[keras.Model, ModelVersionInfo]:
    """Verify and safely load a version (see :meth:`ModelRegistry.load`)."""
    return ModelRegistry(settings).load(ref)
