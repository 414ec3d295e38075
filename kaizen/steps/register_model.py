"""Step: register a model that passed the gate as the new challenger version."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from kaizen.steps._io import read_json, tracker

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings


def register_step(
    model_dir: str | os.PathLike[str],
    decision_path: str | os.PathLike[str],
    *,
    settings: Settings,
    run_id: str,
    round_index: int = 0,
) -> dict[str, Any]:
    """Register a model that passed the gate as the new ``challenger`` version.

    The first version of the model also becomes ``champion``. Re-running the step for the
    same pipeline run returns the version it registered before: nothing is duplicated.

    The operating threshold the decision was made at is recorded with the version, as the tags
    ``kaizen.decision_threshold`` and ``kaizen.threshold_policy``; the server decides with it.
    A decision without one (written before thresholds were chosen) registers without them, and
    such a version is served at 0.5.
    """
    from kaizen.evaluation.threshold import threshold_tags
    from kaizen.registry import register_challenger

    decision = read_json(decision_path)
    if not decision.get("passed"):
        raise ValueError(f"refusing to register: the gate decision in {decision_path} is 'fail'")
    run = tracker(run_id, settings)
    if run is None:
        raise ValueError("registering needs the pipeline run id (run_id)")
    tags = threshold_tags(decision.get("threshold"))
    tags |= _store_reference(model_dir, settings, run_id, round_index)
    info = register_challenger(
        model_dir, run_id=run.round_run_id(round_index), settings=settings, tags=tags
    )
    record = info.to_dict()
    record["round"] = round_index
    return record


def _store_reference(
    model_dir: str | os.PathLike[str], settings: Settings, run_id: str, round_index: int
) -> dict[str, str]:
    """Store the model's training reference (``reference.json``, written by the train step)
    in the object store; returns the version tag naming it (none for an export without one)."""
    from pathlib import Path

    from kaizen.monitoring.reference import (
        REFERENCE_FILE,
        REFERENCE_TAG,
        reference_key,
        store_reference,
    )
    from kaizen.platform.storage import open_store

    source = Path(model_dir) / REFERENCE_FILE
    if not source.is_file():
        return {}
    key = reference_key(settings.model_name, run_id, round_index)
    store_reference(open_store(settings), key, source.read_text(encoding="utf-8"))
    return {REFERENCE_TAG: key}
