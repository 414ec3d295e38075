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
    """
    from kaizen.registry import register_challenger

    decision = read_json(decision_path)
    if not decision.get("passed"):
        raise ValueError(f"refusing to register: the gate decision in {decision_path} is 'fail'")
    run = tracker(run_id, settings)
    if run is None:
        raise ValueError("registering needs the pipeline run id (run_id)")
    info = register_challenger(model_dir, run_id=run.round_run_id(round_index), settings=settings)
    record = info.to_dict()
    record["round"] = round_index
    return record
