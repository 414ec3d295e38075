"""The canary router: champion and challenger behind one model name, with hot reload.

``ModelRouter`` is the ``kserve.Model`` KServe serves under the model name. It holds the
registry's ``champion`` and, when one exists, its ``challenger`` (each a
:class:`~kaizen.serving.predictor.FraudPredictor`) and sends each request to one of them:
the challenger with probability ``policy.share`` (a seeded RNG), the champion otherwise.

* **Client errors** (KServe ``InvalidInput``, HTTP 400) are the request's fault: re-raised
  as they are and never counted against a model.
* **A challenger failure** (timeout, non-finite score, exception) is counted against the
  challenger and the champion answers the request instead: clients never see it.
* **A champion failure** propagates (504 for a timeout, 500 with a safe message).

After every request with a challenger present, :func:`kaizen.serving.canary.judge` compares
the two records. A ``promote`` or ``rollback`` decision is taken once per challenger and
carried out off the request path by the router's control thread. It is first recorded in
the object store (:func:`kaizen.serving.canary.record_decision`): when another replica
recorded a decision about the same version first, this router applies that one instead of
its own, so several replicas reach one decision. Promote moves the registry's ``champion``
alias (``actor="canary"``) and sends all traffic to the new champion; rollback withdraws the
challenger (which records the reason) and drops it; both go through
:meth:`~kaizen.registry.models.ModelRegistry.apply_canary_decision`, which changes nothing
when another replica applied the decision already. The replica that recorded the decision
sends it to the notification channels (``KAIZEN_WEBHOOK_URL``, Slack, email), the others do
not. A decision that cannot be recorded (object store unreachable) moves nothing: the
challenger gets no more traffic here and recording is retried at every poll. A challenger
whose version already has a recorded decision is never canaried again: the decision is
applied instead.

The same control thread polls the registry aliases every ``reload_interval`` seconds and
loads a version an alias moved to before swapping it in: a request keeps the predictor it
started with, so nothing in flight is dropped. A version that fails to load (damaged file,
sha256 mismatch) never replaces the working one; it is logged, counted
(``kaizen_serving_reload_failures_total``) and retried only after a growing pause.

V1 predictions carry a ``prediction_id``; ``POST /v1/models/<name>/feedback`` (see
:func:`feedback_route`) takes labels for them, and the canary compares accuracy once both
variants have enough labels. Feedback is V1 only: V2 responses carry no prediction ids.
The feedback route also stores every label in the object store
(:mod:`kaizen.monitoring.labels`), and every answered prediction, V1 or V2, goes to the
prediction log (:mod:`kaizen.monitoring.predictions`), which the router closes, writing what
is buffered, when the server stops.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import queue
import random
import threading
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import kserve
import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from kserve.errors import InvalidInput, ModelNotReady
from kserve.model import InferenceVerb
from kserve.protocol.infer_type import InferResponse

from kaizen.platform.names import DEFAULT_MODEL_NAME
from kaizen.serving import metrics
from kaizen.serving.canary import (
    CanaryDecision,
    CanaryPolicy,
    CanaryRecord,
    VariantStats,
    judge,
    record_decision,
    recorded_decision,
)
from kaizen.serving.errors import PredictionFailedError, RequestTimeoutError
from kaizen.serving.predictor import (
    OUTPUT_NAME,
    SCORED_MATRICES,
    FraudPredictor,
)
from kaizen.serving.schema import DEFAULT_MAX_BATCH, MAX_FEEDBACK_ITEMS

if TYPE_CHECKING:
    from kaizen.monitoring.predictions import PredictionLog
    from kaizen.platform.settings import Settings
    from kaizen.platform.storage import ObjectStore
    from kaizen.registry.models import ModelRegistry

logger = logging.getLogger("kaizen.serving.router")

CANARY_ACTOR = "canary"
VERSION_HEADER = "x-kaizen-model-version"
#: Most recent predictions remembered for feedback; older ids are answered as unknown.
DEFAULT_FEEDBACK_MEMORY = 100_000
#: First pause before a version that failed to load is tried again; doubles up to the max.
RETRY_FAILED_LOAD_SECONDS = 30.0
MAX_RETRY_FAILED_LOAD_SECONDS = 600.0

_STOP = object()


@dataclass(eq=False)
class _Variant:
    """One loaded version in one role, with its record since it took that role."""

    predictor: FraudPredictor
    role: metrics.Variant
    stats: VariantStats
    decided: bool = False

    @property
    def version(self) -> int:
        return self.predictor.model_version


@dataclass(frozen=True)
class _Serving:
    """What requests are routed to; replaced as a whole, never mutated."""

    champion: _Variant
    challenger: _Variant | None = None


@dataclass(frozen=True)
class _Remembered:
    """A prediction awaiting its label. Holds the record, not the variant, so that a
    retired model is not kept in memory by the predictions it made."""

    stats: VariantStats
    version: int
    role: metrics.Variant
    is_fraud: bool


class ModelRouter(kserve.Model):
    """Champion and optional challenger served under one name, with canary and hot reload.

    Args:
        name: Model name in the URLs (``/v1/models/<name>:predict``).
        settings: Kaizen settings (registry, ``KAIZEN_HOME``, webhook).
        feature_repo: Feast repo for entity requests; None rejects them with a 400.
        threshold: Probability at or above which ``is_fraud`` is true; None (the default):
            each version's recorded threshold, 0.5 for a version without one.
        max_batch: Most instances (V1) or rows (V2) per request.
        request_timeout: Seconds each variant gets per request (None: no limit).
        policy: Canary share and limits.
        reload_interval: Seconds between polls of the registry aliases.
        canary: False serves the champion only (a challenger alias is ignored).
        seed: Seed of the routing RNG, so a run's champion/challenger split repeats.
        feedback_memory: Most recent predictions remembered for feedback.

    Raises:
        ValueError: ``reload_interval`` or ``feedback_memory`` out of range.
    """

    def __init__(
        self,
        name: str = DEFAULT_MODEL_NAME,
        *,
        settings: Settings,
        feature_repo: Path | None = None,
        threshold: float | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
        request_timeout: float | None = 2.0,
        policy: CanaryPolicy | None = None,
        reload_interval: float = 2.0,
        canary: bool = True,
        seed: int = 0,
        feedback_memory: int = DEFAULT_FEEDBACK_MEMORY,
    ) -> None:
        super().__init__(name)
        if not math.isfinite(reload_interval) or reload_interval <= 0:
            raise ValueError(f"reload_interval must be > 0 seconds, got {reload_interval}")
        if feedback_memory < 1:
            raise ValueError(f"feedback_memory must be >= 1, got {feedback_memory}")
        if threshold is not None and not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold must be within [0, 1], got {threshold}")
        self.feature_repo = feature_repo
        self.threshold = threshold
        self.max_batch = max_batch
        self.request_timeout = request_timeout
        self.policy = policy or CanaryPolicy()
        self.reload_interval = reload_interval
        self.canary = canary
        self._settings = settings
        self._rng = random.Random(seed)
        self._serving: _Serving | None = None
        self._registry_instance: ModelRegistry | None = None
        self._store_instance: ObjectStore | None = None
        # Decisions judged here that could not be recorded yet; retried at every poll.
        self._unrecorded: list[tuple[_Variant, _Variant, CanaryDecision]] = []
        # Guards swaps of _serving and each challenger's "decided" flag.
        self._lock = threading.Lock()
        self._control: queue.Queue[Any] = queue.Queue()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # Versions this router rejected or failed to promote: never loaded as challenger again.
        self._withdrawn: set[int] = set()
        # version -> (failed attempts, monotonic time before which it is not tried again)
        self._failed_loads: dict[int, tuple[int, float]] = {}
        self._warned_no_champion = False
        self._memory: OrderedDict[str, _Remembered] = OrderedDict()
        self._memory_size = feedback_memory
        self._memory_lock = threading.Lock()
        self._prediction_log: PredictionLog | None = None

    # ----- loading and reloading --------------------------------------------------------

    def _registry(self) -> ModelRegistry:
        if self._registry_instance is None:
            from kaizen.registry.models import ModelRegistry

            self._registry_instance = ModelRegistry(self._settings)
        return self._registry_instance

    def _store(self) -> ObjectStore:
        if self._store_instance is None:
            from kaizen.platform.storage import open_store

            self._store_instance = open_store(self._settings)
        return self._store_instance

    def _new_predictor(
        self, version: int | str, *, fallback_to_last_good: bool = False
    ) -> FraudPredictor:
        # Loaded by number, not alias: an alias that moves during the load cannot mix versions.
        return FraudPredictor(
            self.name,
            alias=version,
            threshold=self.threshold,
            max_batch=self.max_batch,
            feature_repo=self.feature_repo,
            settings=self._settings,
            request_timeout=self.request_timeout,
            fallback_to_last_good=fallback_to_last_good,
        )

    def load(self) -> bool:
        """Load the champion (and the challenger, if any), then start the control thread.

        A challenger that fails to load is logged and counted; the champion serves alone.

        Returns:
            True once the champion is ready.

        Raises:
            kaizen.registry.ModelVersionNotFoundError: the registry has no champion.
            kaizen.registry.ModelIntegrityError: the champion's files fail verification.
        """
        from kaizen.registry.models import CHALLENGER, CHAMPION, ModelVersionNotFoundError

        registry = self._registry()
        try:
            champion_info = registry.by_alias(CHAMPION)
        except Exception as error:
            # The registry itself is unreadable: the champion's predictor falls back below.
            logger.error("model router %s: cannot read the registry: %s", self.name, error)
            champion_info = None
            champion_ref: int | str = CHAMPION
        else:
            if champion_info is None:
                raise ModelVersionNotFoundError(
                    f"registered model {registry.name!r} has no champion to serve; register "
                    f"a model first"
                )
            champion_ref = champion_info.version
        champion = self._new_predictor(champion_ref, fallback_to_last_good=True)
        champion.load()
        challenger = None
        if self.canary and champion_info is not None:
            info = registry.by_alias(CHALLENGER)
            if (
                info is not None
                and info.version != champion.model_version
                and not self._decided_elsewhere(info.version)
            ):
                challenger = self._try_load(info.version, CHALLENGER)
        self._install(champion, challenger)
        self._start_prediction_log()
        self.ready = True
        self.start_control()
        return True

    def _start_prediction_log(self) -> None:
        """Start logging predictions to the object store (``KAIZEN_PREDICTION_LOG_*``)."""
        from kaizen.monitoring.predictions import PredictionLog

        settings = self._settings
        if self._prediction_log is not None or settings.prediction_log_max_rows == 0:
            return
        self._prediction_log = PredictionLog(
            self.name,
            self._store(),
            max_rows=settings.prediction_log_max_rows,
            flush_rows=min(settings.prediction_log_flush_rows, settings.prediction_log_max_rows),
            flush_seconds=settings.prediction_log_flush_seconds,
        )
        self._prediction_log.start()

    def start(self) -> None:
        """KServe's start hook: make sure the control thread runs (readiness unchanged)."""
        self.start_control()

    def start_control(self) -> None:
        """Start the thread that hot-reloads aliases and carries out canary decisions."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return
            self._stopping.clear()
            self._thread = threading.Thread(
                target=self._control_loop, name=f"kaizen-router-{self.name}", daemon=True
            )
            self._thread.start()

    def stop(self) -> None:
        """Stop the control thread and report not ready (KServe calls this on unload)."""
        self.ready = False
        self._stopping.set()
        self._control.put(_STOP)
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        if self._prediction_log is not None:
            # After the drain: every answered prediction is in the buffer now.
            self._prediction_log.close()

    def _control_loop(self) -> None:
        next_poll = time.monotonic() + self.reload_interval
        while not self._stopping.is_set():
            try:
                item = self._control.get(timeout=max(0.0, next_poll - time.monotonic()))
            except queue.Empty:
                item = None
            if item is _STOP or self._stopping.is_set():
                return
            try:
                if item is None:
                    self.reload()
                    self._retry_unrecorded()
                else:
                    self._apply_decision(*item)
            except Exception:
                # The control thread must outlive a registry hiccup; the next poll retries.
                logger.exception("model router %s: control step failed", self.name)
            if item is None:
                next_poll = time.monotonic() + self.reload_interval

    def reload(self) -> None:
        """Poll the registry aliases once and swap in the versions they moved to.

        Runs in the control thread (call it directly only when that thread is not running).
        """
        from kaizen.registry.models import CHALLENGER, CHAMPION

        if self._serving is None:
            return  # load() has not finished; it reads the aliases itself
        # One light query per poll: the control thread shares the GIL with requests.
        aliases = self._registry().alias_versions()
        champion_version = aliases.get(CHAMPION)
        challenger_version = aliases.get(CHALLENGER) if self.canary else None
        serving = self._serving
        if champion_version is None:
            if not self._warned_no_champion:
                logger.warning(
                    "model router %s: the registry has no champion alias; still serving version %d",
                    self.name,
                    serving.champion.version,
                )
            self._warned_no_champion = True
        else:
            self._warned_no_champion = False
        if champion_version is not None and champion_version != serving.champion.version:
            self._replace_champion(serving, champion_version)
        serving = self._serving
        assert serving is not None
        wanted = challenger_version
        if wanted == serving.champion.version or wanted in self._withdrawn:
            wanted = None
        current = serving.challenger
        if wanted is None:
            if current is not None:
                logger.info(
                    "model router %s: challenger alias no longer names version %d; dropped",
                    self.name,
                    current.version,
                )
                self._drop_challenger(current)
        elif (current is None or current.version != wanted) and not self._decided_elsewhere(wanted):
            predictor = self._try_load(wanted, CHALLENGER)
            if predictor is not None:
                self._install(serving.champion.predictor, predictor)
        metrics.record_reload_poll(self.name)

    def _replace_champion(self, serving: _Serving, version: int) -> None:
        from kaizen.registry.models import CHAMPION

        challenger = serving.challenger
        if challenger is not None and challenger.version == version:
            # Promoted outside this router (``kaizen promote``): the model is already loaded.
            self._install(challenger.predictor, None)
            logger.info("model router %s: champion is now version %d", self.name, version)
            return
        predictor = self._try_load(version, CHAMPION)
        if predictor is not None:
            self._install(predictor, challenger.predictor if challenger is not None else None)
            logger.info("model router %s: champion is now version %d", self.name, version)

    def _try_load(self, version: int, alias: str) -> FraudPredictor | None:
        attempts, not_before = self._failed_loads.get(version, (0, 0.0))
        if time.monotonic() < not_before:
            return None
        try:
            predictor = self._new_predictor(version)
            predictor.load()
        except Exception as error:
            attempts += 1
            pause = min(
                RETRY_FAILED_LOAD_SECONDS * 2 ** (attempts - 1), MAX_RETRY_FAILED_LOAD_SECONDS
            )
            self._failed_loads[version] = (attempts, time.monotonic() + pause)
            metrics.record_reload_failure(self.name, version, alias)
            serving = self._serving
            keeping = (
                f"still serving version {serving.champion.version}"
                if serving is not None
                else "nothing else loaded"
            )
            logger.error(
                "model router %s: version %d (%s) failed to load, not swapped in (%s); "
                "next try in %.0f s: %s",
                self.name,
                version,
                alias,
                keeping,
                pause,
                error,
            )
            return None
        self._failed_loads.pop(version, None)
        return predictor

    def _install(self, champion: FraudPredictor, challenger: FraudPredictor | None) -> None:
        """Swap in a new champion/challenger pair, both with fresh records.

        The canary compares the two over the same period, so both records restart whenever
        either side changes.
        """
        window = self.policy.latency_window
        serving = _Serving(
            champion=_Variant(champion, "champion", VariantStats(window)),
            challenger=(
                _Variant(challenger, "challenger", VariantStats(window))
                if challenger is not None
                else None
            ),
        )
        with self._lock:
            previous = self._serving
            self._serving = serving
        logger.info(
            "model router %s: serving champion version %d%s",
            self.name,
            champion.model_version,
            f", challenger version {challenger.model_version} with "
            f"{self.policy.share:.0%} of requests"
            if challenger is not None
            else "",
        )
        if previous is not None and previous.champion.predictor is not champion:
            logger.info(
                "model router %s: champion version %d replaced by version %d; requests in "
                "flight finish on the version they started with",
                self.name,
                previous.champion.version,
                champion.model_version,
            )
        if previous is None or previous.champion.predictor is not champion:
            # Only a version that loaded and now serves as champion becomes the fallback.
            champion.remember_as_last_good()
        metrics.set_served_version(self.name, "champion", champion.model_version)
        metrics.set_served_version(
            self.name, "challenger", challenger.model_version if challenger else None
        )

    def _drop_challenger(self, challenger: _Variant) -> None:
        with self._lock:
            serving = self._serving
            if serving is None or serving.challenger is not challenger:
                return
            self._serving = _Serving(champion=serving.champion, challenger=None)
        metrics.set_served_version(self.name, "challenger", None)

    # ----- canary decisions -------------------------------------------------------------

    def _consider(self, serving: _Serving) -> None:
        """Judge the challenger after a request; hand a final decision to the control thread."""
        challenger = serving.challenger
        if challenger is None or challenger.decided:
            return
        decision = judge(serving.champion.stats, challenger.stats, self.policy)
        if decision.action == "wait":
            return
        with self._lock:
            if challenger.decided:
                return
            challenger.decided = True
        logger.info(
            "model router %s: canary decided to %s version %d: %s",
            self.name,
            decision.action,
            challenger.version,
            decision.reason,
        )
        metrics.record_canary_decision(
            self.name,
            challenger.version,
            "promote" if decision.action == "promote" else "rollback",
            decision.rule,
        )
        self._control.put((serving.champion, challenger, decision))

    def _apply_decision(
        self, champion: _Variant, challenger: _Variant, decision: CanaryDecision
    ) -> None:
        """Record this router's decision (or find another replica's) and carry it out."""
        from kaizen.platform.storage import StorageError

        version = challenger.version
        # The challenger is "decided": it gets no traffic until the decision is carried out.
        mine = CanaryRecord.of(self.name, version, champion.version, decision)
        try:
            record, ours = record_decision(self._store(), mine)
        except StorageError as error:
            logger.error(
                "model router %s: cannot record the decision to %s version %d, so it is not "
                "applied; the challenger gets no traffic here and recording is retried every "
                "%g s: %s",
                self.name,
                decision.action,
                version,
                self.reload_interval,
                error,
            )
            self._unrecorded.append((champion, challenger, decision))
            return
        except ValueError as error:
            logger.error(
                "model router %s: the recorded decision about version %d is unreadable; "
                "nothing applied, the challenger gets no traffic here: %s",
                self.name,
                version,
                error,
            )
            self._withdrawn.add(version)
            self._drop_challenger(challenger)
            return
        if not ours:
            logger.info(
                "model router %s: judged %s for version %d, follows the decision to %s "
                "recorded by %s at %s: %s",
                self.name,
                decision.action,
                version,
                record.action,
                record.decided_by,
                record.decided_at,
                record.reason,
            )
        self._carry_out(record, champion, challenger, notify=ours)

    def _retry_unrecorded(self) -> None:
        pending, self._unrecorded = self._unrecorded, []
        for champion, challenger, decision in pending:
            self._apply_decision(champion, challenger, decision)

    def _carry_out(
        self,
        record: CanaryRecord,
        champion: _Variant | None,
        challenger: _Variant | None,
        *,
        notify: bool,
    ) -> None:
        """Apply a recorded decision to the registry and to what this router serves.

        ``champion`` and ``challenger`` are the variants this router judged, or None when it
        follows a record about a version it never served.
        """
        version = record.challenger_version
        registry = self._registry()
        if record.action == "rollback":
            self._withdrawn.add(version)
            if challenger is not None:
                self._drop_challenger(challenger)
            try:
                registry.apply_canary_decision(
                    version,
                    "rollback",
                    record.reason,
                    judged_against=record.champion_version,
                    actor=CANARY_ACTOR,
                )
            except Exception as error:
                logger.warning("model router %s: registry left as it is: %s", self.name, error)
            if notify and champion is not None and challenger is not None:
                self._notify("ROLLED_BACK", "rolled back", champion, challenger, record)
            return
        try:
            outcome = registry.apply_canary_decision(
                version,
                "promote",
                record.reason,
                judged_against=record.champion_version,
                actor=CANARY_ACTOR,
            )
        except Exception as error:
            self._withdrawn.add(version)
            if challenger is not None:
                self._drop_challenger(challenger)
            logger.error(
                "model router %s: promoting version %d failed, champion %d keeps serving: %s",
                self.name,
                version,
                record.champion_version,
                error,
            )
            return
        if outcome == "superseded":
            self._withdrawn.add(version)
            aliases = registry.alias_versions()
            logger.warning(
                "model router %s: not promoting version %d: the registry moved on (champion "
                "%s, challenger %s)",
                self.name,
                version,
                aliases.get("champion", "none"),
                aliases.get("challenger", "none"),
            )
            if challenger is not None:
                self._drop_challenger(challenger)
            return
        with self._lock:
            still_ours = (
                challenger is not None
                and self._serving is not None
                and self._serving.challenger is challenger
            )
        if still_ours and challenger is not None:
            self._install(challenger.predictor, None)
        # A router that never loaded the version swaps it in at its next poll (hot reload).
        if notify and champion is not None and challenger is not None:
            self._notify("SUCCEEDED", "promoted", champion, challenger, record)

    def _decided_elsewhere(self, version: int) -> bool:
        """True (and the decision applied) when a decision about ``version`` is recorded.

        Asked before a challenger is loaded: a version another replica (or an earlier run of
        this server) already judged is not canaried again.
        """
        from kaizen.platform.storage import StorageError

        if version in self._withdrawn:
            return True
        try:
            record = recorded_decision(self._store(), self.name, version)
        except (StorageError, ValueError) as error:
            logger.warning(
                "model router %s: cannot read the recorded decision about version %d, "
                "canarying it: %s",
                self.name,
                version,
                error,
            )
            return False
        if record is None:
            return False
        logger.info(
            "model router %s: version %d was judged already (%s, recorded by %s at %s); "
            "applying that decision instead of a canary",
            self.name,
            version,
            record.action,
            record.decided_by,
            record.decided_at,
        )
        self._withdrawn.add(version)
        self._carry_out(record, None, None, notify=False)
        return True

    def _notify(
        self,
        state: str,
        verb: str,
        champion: _Variant,
        challenger: _Variant,
        decision: CanaryRecord,
    ) -> None:
        from kaizen.platform.notify import Event, Notification, deliver

        settings = self._settings
        deliver(
            Notification(
                pipeline="canary",
                run=f"{self.name} version {challenger.version}",
                state=state,
                message=(
                    f"canary {verb} {self.name} version {challenger.version} "
                    f"(champion was version {champion.version}): {decision.reason}"
                ),
                details={
                    "model": self.name,
                    "action": decision.action,
                    "rule": decision.rule,
                    "reason": decision.reason,
                    "challenger_version": challenger.version,
                    "champion_version": champion.version,
                    "challenger": _summary(challenger.stats),
                    "champion": _summary(champion.stats),
                },
                event=Event.CANARY_PROMOTED if verb == "promoted" else Event.CANARY_ROLLED_BACK,
            ),
            settings,
        )

    # ----- serving ----------------------------------------------------------------------

    @property
    def champion_version(self) -> int:
        """Registry version of the champion being served (0 before ``load``)."""
        serving = self._serving
        return serving.champion.version if serving is not None else 0

    @property
    def challenger_version(self) -> int | None:
        """Registry version of the challenger getting traffic, or None."""
        serving = self._serving
        if serving is None or serving.challenger is None:
            return None
        return serving.challenger.version

    async def __call__(
        self,
        body: Any,
        headers: dict[str, str] | None = None,
        verb: InferenceVerb = InferenceVerb.PREDICT,
    ) -> tuple[Any, dict[str, str]]:
        """Answer one request with the champion or, for its share, the challenger.

        Args:
            body: V1 body or V2 ``InferRequest``.
            headers: Request headers.
            verb: KServe's inference verb.

        Returns:
            The response and its headers (``x-kaizen-model-version`` names the version).

        Raises:
            InvalidInput: the request is invalid (HTTP 400).
            ModelNotReady: nothing is loaded yet.
            RequestTimeoutError: the champion ran out of time (HTTP 504).
            PredictionFailedError: the champion produced no usable answer (HTTP 500).
        """
        serving = self._serving
        if serving is None:
            raise ModelNotReady(self.name)
        challenger = serving.challenger
        try:
            if (
                challenger is not None
                and not challenger.decided
                and self._rng.random() < self.policy.share
            ):
                try:
                    return await self._call_variant(challenger, body, headers, verb)
                except InvalidInput:
                    raise
                except Exception as error:
                    logger.warning(
                        "model router %s: challenger version %d failed, champion answers: %s",
                        self.name,
                        challenger.version,
                        error,
                    )
            return await self._call_variant(serving.champion, body, headers, verb)
        finally:
            if challenger is not None:
                self._consider(serving)

    async def _call_variant(
        self, variant: _Variant, body: Any, headers: dict[str, str] | None, verb: InferenceVerb
    ) -> tuple[Any, dict[str, str]]:
        version, role = variant.version, variant.role
        started = time.perf_counter()
        scored: list[np.ndarray] = []
        token = SCORED_MATRICES.set(scored)
        try:
            result = await variant.predictor(body, headers=headers, verb=verb)
            response, response_headers = _split(result)
            scores = _scores(response)
            if not all(math.isfinite(score) for score in scores):
                # A diverged model scores NaN; that is a failed prediction, not an answer.
                raise PredictionFailedError(
                    f"{self.name} version {version} produced a non-finite fraud probability"
                )
        except InvalidInput:
            metrics.record_request(self.name, version, role, "client_error", None)
            metrics.record_error(self.name, version, role, "invalid_input")
            raise
        except Exception as error:
            elapsed = time.perf_counter() - started
            variant.stats.record_error()
            timeout = isinstance(error, RequestTimeoutError)
            metrics.record_request(
                self.name, version, role, "timeout" if timeout else "error", elapsed
            )
            metrics.record_error(
                self.name,
                version,
                role,
                "timeout"
                if timeout
                else "prediction_failed"
                if isinstance(error, PredictionFailedError)
                else "exception",
            )
            raise
        finally:
            SCORED_MATRICES.reset(token)
        elapsed = time.perf_counter() - started
        variant.stats.record_success(elapsed)
        metrics.record_request(self.name, version, role, "ok", elapsed)
        metrics.record_scores(self.name, version, role, scores)
        ids: list[str] = []
        if isinstance(response, dict):
            ids = self._label_predictions(response, variant)
        self._log_predictions(variant, response, scores, scored, ids)
        return response, {**response_headers, VERSION_HEADER: str(version)}

    def _log_predictions(
        self,
        variant: _Variant,
        response: Any,
        scores: list[float],
        scored: list[np.ndarray],
        ids: list[str],
    ) -> None:
        """Hand one answer's predictions to the prediction log; never raises."""
        from kaizen.monitoring.predictions import LoggedPrediction, new_prediction_id, now

        log = self._prediction_log
        if log is None or not scored:
            return
        try:
            matrix = scored[-1]
            if isinstance(response, dict):
                decisions = [bool(p.get("is_fraud")) for p in response.get("predictions", [])]
            else:  # V2 answers scores only: the decision is the threshold's
                threshold = variant.predictor.threshold  # the version's own (see predictor)
                decisions = [score >= threshold for score in scores]
            if len(ids) != len(scores):  # V2 responses have no place for ids: made up here
                ids = [new_prediction_id() for _ in scores]
            if not (len(matrix) == len(scores) == len(decisions)):
                return
            answered = now()
            names = tuple(variant.predictor.features)
            log.record(
                [
                    LoggedPrediction(
                        prediction_id=ids[i],
                        time=answered,
                        model_version=variant.version,
                        variant=variant.role,
                        score=scores[i],
                        decision=decisions[i],
                        features=tuple(float(v) for v in matrix[i]),
                        feature_names=names,
                    )
                    for i in range(len(scores))
                ]
            )
        except Exception:  # the log must never fail a request
            logger.exception("model router %s: could not log predictions", self.name)

    def _label_predictions(self, response: dict[str, Any], variant: _Variant) -> list[str]:
        predictions = response.get("predictions")
        if not isinstance(predictions, list):
            return []
        ids = []
        with self._memory_lock:
            for prediction in predictions:
                if not isinstance(prediction, dict):
                    continue
                prediction_id = uuid.uuid4().hex
                prediction["prediction_id"] = prediction_id
                ids.append(prediction_id)
                self._memory[prediction_id] = _Remembered(
                    variant.stats, variant.version, variant.role, bool(prediction.get("is_fraud"))
                )
            while len(self._memory) > self._memory_size:
                self._memory.popitem(last=False)
        return ids

    def store_labels(self, labels: list[tuple[str, int]]) -> None:
        """Store labels durably in the object store (``labels/<model>/``), before the canary.

        Every label is stored, also for ids this server does not remember: the prediction
        log joins them by id (:mod:`kaizen.monitoring.labels`).

        Args:
            labels: ``(prediction_id, is_fraud)`` pairs.

        Raises:
            kaizen.platform.storage.StorageError: the object store refused the write.
        """
        from kaizen.monitoring.labels import Label, store_labels
        from kaizen.monitoring.predictions import now

        received = now()
        store_labels(
            self._store(),
            self.name,
            [Label(pid, int(label), received) for pid, label in labels],
            source="api",
            received=received,
        )

    def record_feedback(self, prediction_id: str, is_fraud: bool | int) -> bool:
        """Record the true label of one earlier V1 prediction.

        Each prediction takes one label: it is forgotten once labelled.

        Args:
            prediction_id: The ``prediction_id`` of the prediction.
            is_fraud: The true label.

        Returns:
            False when the id is unknown (never issued, already labelled, or too old).
        """
        with self._memory_lock:
            remembered = self._memory.pop(prediction_id, None)
        if remembered is None:
            return False
        correct = remembered.is_fraud == bool(is_fraud)
        remembered.stats.record_feedback(correct)
        metrics.record_feedback(self.name, remembered.version, remembered.role, correct)
        return True

    @property
    def features(self) -> list[str]:
        """The champion's feature names, in model order ([] before ``load``)."""
        serving = self._serving
        return list(serving.champion.predictor.features) if serving is not None else []

    def get_input_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the champion's input tensor."""
        serving = self._serving
        return serving.champion.predictor.get_input_types() if serving else []

    def get_output_types(self) -> list[dict[str, Any]]:
        """V2 metadata of the champion's output tensor."""
        serving = self._serving
        return serving.champion.predictor.get_output_types() if serving else []


def _split(result: Any) -> tuple[Any, dict[str, str]]:
    if isinstance(result, tuple) and len(result) == 2:
        response, headers = result
        return response, dict(headers or {})
    return result, {}


def _scores(response: Any) -> list[float]:
    if isinstance(response, dict):
        predictions = response.get("predictions")
        if isinstance(predictions, list):
            return [
                float(p["fraud_probability"])
                for p in predictions
                if isinstance(p, dict) and p.get("fraud_probability") is not None
            ]
        return []
    if isinstance(response, InferResponse):
        for output in response.outputs or []:
            if output.name == OUTPUT_NAME:
                return [float(v) for v in np.asarray(output.as_numpy()).ravel()]
    return []


def _summary(stats: VariantStats) -> dict[str, Any]:
    p95 = stats.p95()
    return {
        "requests": stats.requests,
        "errors": stats.errors,
        "error_rate": stats.error_rate,
        "p95_ms": None if p95 is None else round(p95 * 1000, 3),
        "feedback": stats.feedback_total,
        "accuracy": stats.accuracy,
    }


def parse_feedback(body: Any) -> list[tuple[str, int]]:
    """Validate a feedback body ``{"feedback": [{"prediction_id": str, "is_fraud": 0|1}]}``.

    ``is_fraud`` may also be ``true`` or ``false``.

    Args:
        body: The decoded JSON body.

    Returns:
        ``(prediction_id, is_fraud)`` pairs in order.

    Raises:
        ValueError: naming the field at fault, what was expected and what came.
    """
    if not isinstance(body, dict):
        raise ValueError(f"body: expected an object with 'feedback', got {type(body).__name__}")
    unknown = sorted(set(body) - {"feedback"})
    if unknown:
        raise ValueError(f"body: unknown field(s) {unknown}; expected only 'feedback'")
    items = body.get("feedback")
    if not isinstance(items, list):
        raise ValueError(f"feedback: expected a list of labels, got {_kind(items)}")
    if not items:
        raise ValueError("feedback: empty; send at least one label")
    if len(items) > MAX_FEEDBACK_ITEMS:
        raise ValueError(
            f"feedback: {len(items)} labels exceed the limit of {MAX_FEEDBACK_ITEMS} per request"
        )
    labels = []
    for index, item in enumerate(items):
        where = f"feedback[{index}]"
        if not isinstance(item, dict):
            raise ValueError(f"{where}: expected an object, got {_kind(item)}")
        extra = sorted(set(item) - {"prediction_id", "is_fraud"})
        if extra:
            raise ValueError(
                f"{where}: unknown field(s) {extra}; expected 'prediction_id' and 'is_fraud'"
            )
        prediction_id = item.get("prediction_id")
        if not isinstance(prediction_id, str) or not prediction_id.strip():
            raise ValueError(
                f"{where}.prediction_id: expected a non-empty string, got {_kind(prediction_id)}"
            )
        label = item.get("is_fraud")
        # true/false too: a client may echo the type of the prediction's own is_fraud.
        if not isinstance(label, int) or label not in (0, 1):
            raise ValueError(
                f"{where}.is_fraud: expected 0 or 1 (or true/false), got {_kind(label)}"
            )
        labels.append((prediction_id, int(label)))
    return labels


def _kind(value: Any) -> str:
    if value is None:
        return "nothing"
    text = json.dumps(value) if isinstance(value, str | int | float | bool) else ""
    return f"{type(value).__name__} {text}".strip() if text else type(value).__name__


def feedback_route(router: ModelRouter) -> APIRouter:
    """``POST /v1/models/<name>/feedback``: true labels for earlier V1 predictions.

    Body ``{"feedback": [{"prediction_id": "...", "is_fraud": 0 | 1}, ...]}``; answer
    ``{"accepted": n, "unknown": [ids not remembered]}``, or 400 ``{"error": ...}`` naming
    the field at fault.

    Args:
        router: The router whose predictions the labels are for.

    Returns:
        A FastAPI router to include in KServe's app (``kserve.model_server.app``).
    """
    api = APIRouter()

    async def feedback(request: Request) -> JSONResponse:
        raw = await request.body()
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as error:
            # ValueError covers bad UTF-8 too; RecursionError is JSON nested too deep.
            return JSONResponse({"error": f"body: malformed JSON ({error})"}, status_code=400)
        try:
            labels = parse_feedback(body)
        except ValueError as error:
            return JSONResponse({"error": str(error)}, status_code=400)
        try:
            await asyncio.to_thread(router.store_labels, labels)
        except Exception as error:
            from kaizen.platform.redaction import redact_text

            # Not applied to the canary either: the client's retry then counts once.
            reason = redact_text(str(error))
            logger.error("model router %s: feedback not stored: %s", router.name, reason)
            return JSONResponse(
                {"error": f"labels not stored, send them again: {reason}"}, status_code=503
            )
        unknown = [pid for pid, label in labels if not router.record_feedback(pid, label)]
        return JSONResponse(
            {"accepted": len(labels) - len(unknown), "unknown": unknown, "stored": len(labels)}
        )

    api.add_api_route(
        f"/v1/models/{router.name}/feedback",
        feedback,
        methods=["POST"],
        summary="Record true labels of earlier predictions",
    )
    return api
