"""Drift of live values against a training reference: PSI and the two-sample KS test.

**PSI** (population stability index) compares the share of rows in each of the reference's
quantile bins: ``sum((live - ref) * ln(live / ref))`` over the bins, shares floored at
``1e-4`` so an empty bin counts as rare, not infinite. Rules of thumb: below 0.1 stable, 0.1 to
0.2 a shift worth watching, above 0.2 a shift (``KAIZEN_MONITOR_PSI_THRESHOLD``).

**KS** (two-sample Kolmogorov-Smirnov, ``scipy.stats.ks_2samp``) compares the live values with
the reference's 201 quantiles. Its p-value is reported, not judged: with thousands of live rows
it calls the smallest harmless shift significant, while PSI measures how large the shift is.

Why not a drift library (Evidently, NannyML, alibi-detect): each brings dozens of dependencies
(and Evidently a web UI) for two formulas; scipy is already installed with scikit-learn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kaizen.monitoring.reference import Distribution, bin_counts

if TYPE_CHECKING:
    import numpy as np

#: Smallest share a bin is given, so an empty bin is rare rather than infinitely surprising.
SHARE_FLOOR = 1e-4


@dataclass(frozen=True)
class Drift:
    """The drift of one column.

    Attributes:
        name: the feature (or ``score``).
        psi: the population stability index over the reference's bins.
        ks_pvalue: the two-sample KS test's p-value (None: scipy is not installed).
        rows: live values compared.
    """

    name: str
    psi: float
    ks_pvalue: float | None
    rows: int


def psi(reference: Distribution, values: np.ndarray) -> float:
    """The PSI of ``values`` over ``reference``'s bins.

    Raises:
        ValueError: no live values, or values that are not finite.
    """
    import numpy as np

    live = _finite(values)
    expected = np.asarray(reference.counts, dtype="float64")
    observed = bin_counts(reference.edges, live).astype("float64")
    expected_share = np.maximum(expected / expected.sum(), SHARE_FLOOR)
    observed_share = np.maximum(observed / observed.sum(), SHARE_FLOOR)
    return float(
        np.sum((observed_share - expected_share) * np.log(observed_share / expected_share))
    )


def ks_pvalue(reference: Distribution, values: np.ndarray) -> float | None:
    """The two-sample KS p-value of ``values`` against the reference's quantiles.

    Returns:
        The p-value, or None when scipy is not installed.
    """
    try:
        from scipy.stats import ks_2samp
    except ImportError:
        return None
    result = ks_2samp(_finite(values), list(reference.quantiles))
    pvalue = float(result.pvalue)
    return pvalue if math.isfinite(pvalue) else None


def drift(name: str, reference: Distribution, values: np.ndarray) -> Drift:
    """PSI and KS of one column's live ``values`` against its ``reference``."""
    return Drift(name, psi(reference, values), ks_pvalue(reference, values), len(values))


def _finite(values: np.ndarray) -> np.ndarray:
    import numpy as np

    array = np.asarray(values, dtype="float64")
    if array.size == 0:
        raise ValueError("no live values to compare with the reference")
    if not np.isfinite(array).all():
        raise ValueError("live values must be finite, got NaN or inf")
    return array
