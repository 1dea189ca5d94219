"""Fitting a credit scorecard: bins, weight of evidence, a logistic regression, points.

1. **Bins**, fitted on the training rows. Numeric: up to :data:`NUMERIC_BINS` quantile
   bins (``KBinsDiscretizer``), then adjacent bins are pooled until the bad rate is
   monotone in the value (pool-adjacent-violators, direction from the correlation).
   Categorical: one bin per category; categories seen on fewer than
   :data:`RARE_SHARE` of the training rows are pooled into one bin.
2. **Weight of evidence** per pooled bin, smoothed by :data:`WOE_SMOOTHING` pseudo
   counts: ``woe = ln((good_b + a) / (G + a k)) - ln((bad_b + a) / (B + a k))``
   (``k`` pooled bins of the field). Positive = better than average.
3. **Logistic regression** of default on the WoE columns: ``logit = b0 + sum_f b_f woe_f``.
4. **Deployed estimator**: the fitted ``ColumnTransformer`` one-hot encodes each
   field's (unpooled) bins, and a ``LogisticRegression`` carries one coefficient per
   bin, ``b_f * woe_f(bin)``: a plain scikit-learn pipeline that skops loads with the
   same allow-list as the logistic model, and whose ``predict_proba`` *is* the
   scorecard (pooled bins share a coefficient).
5. **Points** (:class:`Scaling`; default 600 points at odds 50:1 good:bad, 20 points
   to double the odds): ``score = offset - factor * logit`` with
   ``factor = pdo / ln 2`` and ``offset = base_points - factor * ln(base_odds)``;
   each field's bin is worth ``-factor * b_f * woe + (offset - factor * b0) / F``
   points, so an applicant's points add up to the score. The table goes into the
   model's metadata.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder

NUMERIC_BINS = 5
#: A category on fewer than this share of the training rows is pooled with the other rare ones.
RARE_SHARE = 0.03
#: Pseudo count added to the good and bad counts of each bin before taking logs.
WOE_SMOOTHING = 0.5


@dataclass(frozen=True)
class Scaling:
    """Points-to-double-the-odds scaling of the log-odds into a score."""

    base_points: float = 600.0
    base_odds: float = 50.0  # good:bad odds worth base_points
    pdo: float = 20.0

    @property
    def factor(self) -> float:
        return self.pdo / math.log(2.0)

    @property
    def offset(self) -> float:
        return self.base_points - self.factor * math.log(self.base_odds)

    def as_dict(self) -> dict[str, float]:
        return {
            "base_points": self.base_points,
            "base_odds": self.base_odds,
            "pdo": self.pdo,
            "factor": self.factor,
            "offset": self.offset,
        }


@dataclass(frozen=True)
class FieldBins:
    """One field's bins: which pooled group each bin is in, and the group's WoE."""

    field: str
    type: str  # numeric | categorical
    labels: tuple[str, ...]  # one per encoded (one-hot) column
    group: tuple[int, ...]  # bin -> pooled group
    woe: tuple[float, ...]  # per pooled group
    counts: tuple[int, ...]  # training rows per bin
    bads: tuple[int, ...]  # defaults per bin

    def bin_woe(self) -> np.ndarray:
        return np.array([self.woe[g] for g in self.group], dtype=float)


def fit_scorecard(
    X: pd.DataFrame,
    y: pd.Series,
    numeric: Sequence[str],
    categorical: Sequence[tuple[str, Sequence[str]]],
    seed: int,
    scaling: Scaling = Scaling(),
) -> tuple[Pipeline, dict[str, Any]]:
    """Fit the scorecard on (X, y); return the deployed pipeline and its points table."""
    prep = ColumnTransformer(
        [
            (
                "num",
                KBinsDiscretizer(
                    n_bins=[min(NUMERIC_BINS, int(X[c].nunique())) for c in numeric],
                    encode="onehot-dense",
                    strategy="quantile",
                    quantile_method="averaged_inverted_cdf",
                    subsample=None,
                ),
                list(numeric),
            ),
            (
                "cat",
                OneHotEncoder(
                    categories=[list(cats) for _, cats in categorical],
                    handle_unknown="ignore",
                    sparse_output=False,
                ),
                [name for name, _ in categorical],
            ),
        ]
    )
    with warnings.catch_warnings():
        # Few distinct values (e.g. 1..4) collapse quantile edges; the discretizer
        # drops the empty bins and says so: that is the intended behaviour here.
        warnings.filterwarnings("ignore", message="Bins whose width are too small")
        onehot = prep.fit_transform(X)
    y_arr = y.to_numpy(dtype=int)
    discretizer: KBinsDiscretizer = prep.named_transformers_["num"]
    encoder: OneHotEncoder = prep.named_transformers_["cat"]

    fields: list[FieldBins] = []
    offset = 0
    for j, name in enumerate(numeric):
        edges = discretizer.bin_edges_[j]
        n = int(discretizer.n_bins_[j])
        counts, bads = _bin_counts(onehot[:, offset : offset + n], y_arr)
        labels = tuple(_interval(edges, b) for b in range(n))
        fields.append(_numeric_field(name, labels, counts, bads))
        offset += n
    for (name, _), cats in zip(categorical, encoder.categories_, strict=True):
        n = len(cats)
        counts, bads = _bin_counts(onehot[:, offset : offset + n], y_arr)
        fields.append(_categorical_field(name, [str(c) for c in cats], counts, bads, len(X)))
        offset += n

    # The regression on one WoE column per field.
    woe_matrix = np.zeros((len(X), len(fields)))
    offset = 0
    for f, spec in enumerate(fields):
        n = len(spec.labels)
        woe_matrix[:, f] = onehot[:, offset : offset + n] @ spec.bin_woe()
        offset += n
    woe_lr = LogisticRegression(max_iter=1000, random_state=seed).fit(woe_matrix, y_arr)
    betas = woe_lr.coef_.ravel()

    # The deployed regression: one coefficient per one-hot bin column, b_f * woe.
    clf: LogisticRegression = clone(woe_lr)
    clf.coef_ = np.concatenate([b * spec.bin_woe() for b, spec in zip(betas, fields, strict=True)])[
        None, :
    ]
    clf.intercept_ = woe_lr.intercept_.copy()
    clf.classes_ = woe_lr.classes_.copy()
    clf.n_features_in_ = onehot.shape[1]
    clf.n_iter_ = woe_lr.n_iter_.copy()
    pipeline = Pipeline([("prep", prep), ("clf", clf)])
    table = points_table(fields, betas, float(woe_lr.intercept_[0]), scaling)
    return pipeline, table


def _bin_counts(onehot: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = onehot.sum(axis=0).round().astype(int)
    bads = onehot[y == 1].sum(axis=0).round().astype(int)
    return counts, bads


def _interval(edges: np.ndarray, b: int) -> str:
    lo = "-inf" if b == 0 else f"{edges[b]:g}"
    hi = "inf" if b == len(edges) - 2 else f"{edges[b + 1]:g}"
    return f"[{lo}, {hi})"


def _numeric_field(name: str, labels: tuple[str, ...], counts: Any, bads: Any) -> FieldBins:
    groups = monotone_groups(counts, bads)
    return _field(name, "numeric", labels, groups, counts, bads)


def _categorical_field(name: str, cats: list[str], counts: Any, bads: Any, rows: int) -> FieldBins:
    rare = [i for i, c in enumerate(counts) if c < RARE_SHARE * rows]
    group, next_group = [], 0
    rare_group = None
    for i in range(len(cats)):
        if i in rare:
            if rare_group is None:
                rare_group, next_group = next_group, next_group + 1
            group.append(rare_group)
        else:
            group.append(next_group)
            next_group += 1
    return _field(name, "categorical", tuple(cats), group, counts, bads)


def _field(
    name: str, kind: str, labels: tuple[str, ...], group: Sequence[int], counts: Any, bads: Any
) -> FieldBins:
    k = max(group) + 1
    g_counts = np.bincount(group, weights=counts, minlength=k)
    g_bads = np.bincount(group, weights=bads, minlength=k)
    total_bad = float(np.sum(bads))
    total_good = float(np.sum(counts)) - total_bad
    a = WOE_SMOOTHING
    woe = tuple(
        math.log((g_counts[g] - g_bads[g] + a) / (total_good + a * k))
        - math.log((g_bads[g] + a) / (total_bad + a * k))
        for g in range(k)
    )
    return FieldBins(
        field=name,
        type=kind,
        labels=labels,
        group=tuple(int(g) for g in group),
        woe=woe,
        counts=tuple(int(c) for c in counts),
        bads=tuple(int(b) for b in bads),
    )


def monotone_groups(counts: Sequence[int], bads: Sequence[int]) -> list[int]:
    """Pool adjacent bins until the bad rate is monotone (pool-adjacent-violators).

    The direction is the sign of the count-weighted covariance of bin order and bad
    rate. Returns the pooled group of each bin (non-decreasing, from 0). Empty bins
    are pooled with their neighbour.
    """
    counts_a = np.asarray(counts, dtype=float)
    bads_a = np.asarray(bads, dtype=float)
    rate = np.divide(bads_a, counts_a, out=np.zeros_like(bads_a), where=counts_a > 0)
    order = np.arange(len(counts_a), dtype=float)
    w = counts_a / max(counts_a.sum(), 1.0)
    cov = float(np.sum(w * (order - np.sum(w * order)) * (rate - np.sum(w * rate))))
    sign = 1.0 if cov >= 0 else -1.0
    # Blocks of [first bin, count, bads]; merge while a block breaks the order.
    blocks: list[list[float]] = []
    for i, (c, b) in enumerate(zip(counts_a, bads_a, strict=True)):
        blocks.append([i, c, b])
        while len(blocks) > 1 and _violates(blocks[-2], blocks[-1], sign):
            last = blocks.pop()
            blocks[-1][1] += last[1]
            blocks[-1][2] += last[2]
    starts = [int(b[0]) for b in blocks]
    return [int(np.searchsorted(starts, i, side="right")) - 1 for i in range(len(counts_a))]


def _violates(left: list[float], right: list[float], sign: float) -> bool:
    if left[1] == 0 or right[1] == 0:
        return True  # an empty bin has no rate of its own
    return sign * (right[2] / right[1] - left[2] / left[1]) < 0


def points_table(
    fields: Sequence[FieldBins], betas: np.ndarray, intercept: float, scaling: Scaling
) -> dict[str, Any]:
    """The scorecard as metadata: scaling, regression and points per field and bin."""
    factor, share = scaling.factor, (scaling.offset - scaling.factor * intercept) / len(fields)
    out_fields = []
    for beta, spec in zip(betas, fields, strict=True):
        bins = [
            {
                "bin": label,
                "group": spec.group[b],
                "count": spec.counts[b],
                "bads": spec.bads[b],
                "woe": spec.woe[spec.group[b]],
                "log_odds": float(beta) * spec.woe[spec.group[b]],
                "points": -factor * float(beta) * spec.woe[spec.group[b]] + share,
            }
            for b, label in enumerate(spec.labels)
        ]
        out_fields.append(
            {"field": spec.field, "type": spec.type, "coefficient": float(beta), "bins": bins}
        )
    return {
        "scaling": scaling.as_dict(),
        "intercept": intercept,
        "binning": {
            "numeric": f"up to {NUMERIC_BINS} quantile bins, pooled to a monotone bad rate",
            "categorical": f"one bin per category; categories under {RARE_SHARE:.0%} pooled",
            "woe": f"ln(good share / bad share), {WOE_SMOOTHING} pseudo counts per bin",
        },
        "score": "offset - factor * logit = sum of the fields' points",
        "fields": out_fields,
    }
