"""Drift statistics on binned counts (reference vs window), and score performance.

All take counts per bin, never raw values: the database has already aggregated them.

- PSI, population stability index: ``sum((q - p) * ln(q / p))`` over bins, with empty
  bins' shares floored at ``epsilon`` (default 1e-4) so that a bin empty on one side
  gives a large, finite term instead of infinity.
- KS on binned data: the largest gap between the two cumulative distributions at the
  bin edges. On the fine (percentile) bins this is the exact KS statistic evaluated at
  the percentiles, a lower bound of the unbinned one that is at most one percentile's
  mass (~1 %) below it.
- Jensen-Shannon distance (base 2, in [0, 1]) and the chi-squared goodness-of-fit
  p-value of the window against the reference shares, for categories.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as sps
from scipy.spatial.distance import jensenshannon

ArrayLike = Sequence[float] | np.ndarray


def shares(counts: ArrayLike) -> np.ndarray:
    """Counts as shares of their total (zeros if the total is zero)."""
    arr = np.asarray(counts, dtype=float)
    total = arr.sum()
    return arr / total if total > 0 else np.zeros_like(arr)


def psi(reference: ArrayLike, current: ArrayLike, epsilon: float = 1e-4) -> float:
    """Population stability index of ``current`` against ``reference`` (counts per bin)."""
    p = np.maximum(shares(reference), epsilon)
    q = np.maximum(shares(current), epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def ks_binned(reference: ArrayLike, current: ArrayLike) -> float:
    """Kolmogorov-Smirnov statistic of two binned samples over the same ordered bins."""
    return float(np.max(np.abs(np.cumsum(shares(reference)) - np.cumsum(shares(current)))))


def js_distance(reference: ArrayLike, current: ArrayLike) -> float:
    """Jensen-Shannon distance (base 2) between the two distributions of counts."""
    p, q = shares(reference), shares(current)
    if not p.any() or not q.any():
        return 0.0
    return float(jensenshannon(p, q, base=2))


def chi2_pvalue(reference: ArrayLike, current: ArrayLike, epsilon: float = 1e-4) -> float:
    """p-value of the window's counts under the reference's shares (goodness of fit)."""
    observed = np.asarray(current, dtype=float)
    total = observed.sum()
    if total <= 0 or len(observed) < 2:
        return 1.0
    expected_shares = np.maximum(shares(reference), epsilon)
    expected = expected_shares / expected_shares.sum() * total
    return float(sps.chisquare(observed, expected).pvalue)


def auc(probability: np.ndarray, bad: np.ndarray) -> float | None:
    """Area under the ROC curve (Mann-Whitney with ties averaged); ``None`` if one class."""
    n_bad = int(bad.sum())
    n_good = len(bad) - n_bad
    if n_bad == 0 or n_good == 0:
        return None
    ranks = sps.rankdata(probability)
    return float((ranks[bad.astype(bool)].sum() - n_bad * (n_bad + 1) / 2) / (n_bad * n_good))


def ks_separation(probability: np.ndarray, bad: np.ndarray) -> float | None:
    """KS statistic of the score: the largest gap between the bads' and goods' CDFs."""
    is_bad = bad.astype(bool)
    if is_bad.all() or not is_bad.any():
        return None
    return float(sps.ks_2samp(probability[is_bad], probability[~is_bad]).statistic)


def brier(probability: np.ndarray, bad: np.ndarray) -> float | None:
    """Mean squared error of the probability of default."""
    if len(bad) == 0:
        return None
    return float(np.mean((probability - bad) ** 2))
