"""The training reference a model's live traffic is compared with.

At training time (the train step) a compact summary of what the model learned from is written
beside the model as ``reference.json``; the register step stores it in the object store at::

    monitoring/references/<model>/<pipeline run>-round<k>.json

and tags the model version ``kaizen.reference`` with that key. The summary holds, per feature
(training rows) and for the score (validation rows scored by the trained model):

- ``edges``: the inner edges of up to ten quantile bins (deciles, duplicates merged, so a
  feature with few distinct values gets fewer bins); the outer bins are open-ended;
- ``counts``: the training rows in each bin (``len(edges) + 1`` of them);
- ``quantiles``: 201 evenly spaced quantiles (0, 0.5 %, ..., 100 %), the sample the
  two-sample test compares live values with.

A few kilobytes per feature, whatever the training set's size. Versions registered before
references existed have no tag; the monitor says so and judges only live performance.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from kaizen.platform.storage import ObjectStore

REFERENCE_FILE = "reference.json"
REFERENCE_TAG = "kaizen.reference"
PREFIX = "monitoring/references"
BINS = 10
QUANTILE_POINTS = 201
FORMAT_VERSION = 1


class ReferenceError(ValueError):
    """A reference that cannot be built or read; the message names the feature or key."""


@dataclass(frozen=True)
class Distribution:
    """The reference distribution of one column.

    Attributes:
        edges: inner bin edges, ascending; bin ``i`` holds ``edges[i-1] < x <= edges[i]``.
        counts: reference rows per bin, ``len(edges) + 1`` of them.
        quantiles: evenly spaced quantiles, the two-sample test's reference sample.
    """

    edges: tuple[float, ...]
    counts: tuple[int, ...]
    quantiles: tuple[float, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "edges": list(self.edges),
            "counts": list(self.counts),
            "quantiles": list(self.quantiles),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, name: str) -> Distribution:
        try:
            edges = tuple(float(value) for value in data["edges"])
            counts = tuple(int(value) for value in data["counts"])
            quantiles = tuple(float(value) for value in data["quantiles"])
        except (KeyError, TypeError, ValueError) as error:
            raise ReferenceError(
                f"reference of {name!r}: expected edges, counts and quantiles, got {error}"
            ) from None
        if len(counts) != len(edges) + 1 or sum(counts) <= 0:
            raise ReferenceError(
                f"reference of {name!r}: expected {len(edges) + 1} positive counts for "
                f"{len(edges)} edges, got {list(counts)}"
            )
        return cls(edges, counts, quantiles)


@dataclass(frozen=True)
class Reference:
    """A model's training reference: one :class:`Distribution` per feature, and the score's."""

    features: dict[str, Distribution]
    score: Distribution | None
    rows: int

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT_VERSION,
                "rows": self.rows,
                "features": {name: dist.to_dict() for name, dist in self.features.items()},
                "score": self.score.to_dict() if self.score is not None else None,
            },
            indent=1,
        )

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str) -> Reference:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise ReferenceError(f"{source}: not JSON ({error})") from None
        if not isinstance(data, dict) or data.get("format") != FORMAT_VERSION:
            raise ReferenceError(
                f"{source}: expected a reference of format {FORMAT_VERSION}, "
                f"got {data.get('format') if isinstance(data, dict) else type(data).__name__!r}"
            )
        features = {
            str(name): Distribution.from_dict(value, name=str(name))
            for name, value in dict(data.get("features") or {}).items()
        }
        score = data.get("score")
        return cls(
            features=features,
            score=Distribution.from_dict(score, name="score") if score else None,
            rows=int(data.get("rows", 0)),
        )


def distribution(values: Sequence[float] | np.ndarray, *, name: str) -> Distribution:
    """Quantile bins and the quantile sample of ``values`` (NaN refused, naming ``name``)."""
    import numpy as np

    array = np.asarray(values, dtype="float64")
    if array.size == 0:
        raise ReferenceError(f"reference of {name!r}: no values")
    if not np.isfinite(array).all():
        raise ReferenceError(f"reference of {name!r}: expected finite values, got NaN or inf")
    # Edges are values that occur, so a feature with few values gets one bin per value.
    inner = np.quantile(array, np.linspace(0, 1, BINS + 1)[1:-1], method="inverted_cdf")
    edges = np.unique(inner)
    return Distribution(
        edges=tuple(float(edge) for edge in edges),
        counts=tuple(int(count) for count in bin_counts(edges, array)),
        quantiles=tuple(float(q) for q in np.quantile(array, np.linspace(0, 1, QUANTILE_POINTS))),
    )


def bin_counts(edges: Sequence[float] | np.ndarray, values: np.ndarray) -> np.ndarray:
    """Rows of ``values`` in each bin of ``edges`` (``x <= edge`` falls in the lower bin)."""
    import numpy as np

    indices = np.searchsorted(np.asarray(edges, dtype="float64"), values, side="left")
    return np.bincount(indices, minlength=len(edges) + 1)


def build_reference(
    train: pd.DataFrame,
    feature_names: Sequence[str],
    scores: Sequence[float] | np.ndarray | None,
) -> Reference:
    """The reference of a model trained on ``train`` whose validation scores are ``scores``.

    Raises:
        ReferenceError: a feature column missing from ``train``, or values that are not finite.
    """
    missing = [name for name in feature_names if name not in train.columns]
    if missing:
        raise ReferenceError(f"training data lacks the feature column(s) {missing}")
    features = {name: distribution(train[name].to_numpy(), name=name) for name in feature_names}
    score = distribution(scores, name="score") if scores is not None and len(scores) else None
    return Reference(features=features, score=score, rows=len(train))


def reference_key(model_name: str, pipeline_run_id: str, round_index: int) -> str:
    """Where the register step stores the reference of one run's round."""
    return f"{PREFIX}/{model_name}/{pipeline_run_id}-round{round_index}.json"


def store_reference(store: ObjectStore, key: str, text: str) -> None:
    """Store a reference write-once; the same key written again (a retried step) is kept."""
    from kaizen.platform.storage import KeyExistsError

    with contextlib.suppress(KeyExistsError):
        store.put_bytes(key, text.encode())


def load_reference(store: ObjectStore, tags: Mapping[str, str]) -> Reference | None:
    """The reference a model version's tags point at; None for a version without one.

    Raises:
        ReferenceError: the tag names a key that is missing or not a reference.
    """
    from kaizen.platform.storage import KeyNotFoundError

    key = tags.get(REFERENCE_TAG)
    if not key:
        return None
    try:
        text = store.get_bytes(key)
    except KeyNotFoundError:
        raise ReferenceError(
            f"the version's tag {REFERENCE_TAG} names {key}, which the object store lacks"
        ) from None
    return Reference.from_json(text, source=key)
