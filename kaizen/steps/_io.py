"""What every step shares: reading JSON artifacts, writing Parquet atomically, the tracker."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kaizen.platform.fileio import atomic_path

if TYPE_CHECKING:
    from kaizen.platform.settings import Settings
    from kaizen.registry import PipelineRunTracker


def read_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    return dict(json.loads(Path(path).read_text()))


# The user's file a step's transactions came from, kept in the ingested parquet's metadata
# (pandas stores DataFrame.attrs there) so later steps name it in their errors.
SOURCE_ATTR = "kaizen.source"


def write_parquet(frame: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        frame.to_parquet(tmp, index=False)


def tracker(run_id: str, settings: Settings) -> PipelineRunTracker | None:
    """The MLflow parent run of pipeline run ``run_id``, or None when not tracking."""
    if not run_id:
        return None
    from kaizen.registry import PipelineRunTracker

    return PipelineRunTracker(run_id, settings=settings)
