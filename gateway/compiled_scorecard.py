"""The fast path of the ``scorecard`` kind: one lookup table per field.

The deployed scorecard (:mod:`gateway.scorecard`) is ``Pipeline(ColumnTransformer(
KBinsDiscretizer(one-hot), OneHotEncoder), LogisticRegression)`` whose coefficient
of each bin column is ``b_f * woe_f(bin)``. Folded per caller field:

* numeric: the inner bin edges (a value's bin is ``bisect_right(edges, x)``, the
  discretizer's ``searchsorted(..., side="right")``) and the log-odds of each bin;
* categorical: ``category -> log-odds`` (an unknown category adds 0, as the
  encoder's ``handle_unknown="ignore"`` does).

Explanation (exact, the points are the explanation): a field contributes its bin's
log-odds minus the field's mean over the training rows, ``c_f = w_f(bin) - E[w_f]``,
and ``base = intercept + sum_f E[w_f]``. In points, ``c_f = -(points_f(bin) -
E[points_f]) / factor``.
"""

from __future__ import annotations

import bisect
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.preprocessing import KBinsDiscretizer, OneHotEncoder

from gateway.compiled import (
    FeatureMissing,
    UnsupportedModel,
    _caller_order,
    _category,
    _column,
    _number,
    _transformer,
    _unpack,
    sigmoid,
)


@dataclass(frozen=True)
class BinnedTerm:
    """One field of the scorecard: its bins and their log-odds."""

    field: str
    edges: tuple[float, ...] | None  # numeric: inner edges; None for a category
    weights: tuple[float, ...]  # log-odds per numeric bin
    categories: Mapping[str, float]  # categorical: category -> log-odds
    background: float  # mean log-odds of the field over the training rows

    def weight(self, features: Mapping[str, Any]) -> float:
        if self.edges is None:
            return self.categories.get(_category(features, self.field), 0.0)
        return self.weights[bisect.bisect_right(self.edges, _number(features, self.field))]

    def weights_frame(self, frame: pd.DataFrame) -> np.ndarray:
        column = _column(frame, self.field)
        if column.isna().any():
            raise FeatureMissing(self.field)
        if self.edges is None:
            return column.astype(str).map(self.categories).to_numpy(dtype=float, na_value=0.0)
        index = np.searchsorted(np.array(self.edges), column.to_numpy(dtype=float), side="right")
        return np.asarray(self.weights)[index]


@dataclass(frozen=True)
class CompiledScorecard:
    """A fitted scorecard as per-field lookups (see module docstring)."""

    explanation_method: ClassVar[str] = "scorecard-points"

    intercept: float
    terms: tuple[BinnedTerm, ...]
    #: The caller's field names, in the model's order.
    fields: tuple[str, ...]

    @property
    def base_value(self) -> float:
        """Log-odds of the average training applicant's points."""
        return self.intercept + sum(t.background for t in self.terms)

    def logit(self, features: Mapping[str, Any]) -> float:
        """Log-odds of default for one application."""
        z = self.intercept
        for term in self.terms:
            z += term.weight(features)
        return z

    def probability(self, features: Mapping[str, Any]) -> float:
        """Probability of default for one application."""
        return sigmoid(self.logit(features))

    def explain(self, features: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        """``(base_value, contributions)`` in log-odds; they add up to :meth:`logit`."""
        return self.base_value, {t.field: t.weight(features) - t.background for t in self.terms}

    def logit_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectorised log-odds of every row of ``frame``."""
        z = np.full(len(frame), self.intercept, dtype=float)
        for term in self.terms:
            z += term.weights_frame(frame)
        return z

    def predict_proba_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectorised probability of default of every row of ``frame``."""
        return np.exp(-np.logaddexp(0.0, -self.logit_frame(frame)))


def compile_scorecard(estimator: Any, metadata: Mapping[str, Any]) -> CompiledScorecard:
    """Fold a fitted scorecard pipeline and its points table's bin counts into lookups."""
    prep, clf = _unpack(estimator)
    discretizer, num_cols = _transformer(prep, "num", KBinsDiscretizer)
    encoder, cat_cols = _transformer(prep, "cat", OneHotEncoder)
    if discretizer.encode == "ordinal" or encoder.drop is not None:
        raise UnsupportedModel("expected one-hot bins and categories without drop")
    coef = np.asarray(clf.coef_, dtype=float).ravel()
    n_bins = [int(n) for n in discretizer.n_bins_]
    n_encoded = sum(n_bins) + sum(len(c) for c in encoder.categories_)
    if coef.size != n_encoded:
        raise UnsupportedModel(f"{coef.size} coefficients for {n_encoded} encoded columns")
    counts = _bin_counts(metadata)

    terms: list[BinnedTerm] = []
    offset = 0
    for j, name in enumerate(num_cols):
        weights = coef[offset : offset + n_bins[j]]
        terms.append(
            BinnedTerm(
                field=name,
                edges=tuple(float(e) for e in discretizer.bin_edges_[j][1:-1]),
                weights=tuple(float(w) for w in weights),
                categories={},
                background=_mean(weights, counts, name),
            )
        )
        offset += n_bins[j]
    for name, cats in zip(cat_cols, encoder.categories_, strict=True):
        weights = coef[offset : offset + len(cats)]
        terms.append(
            BinnedTerm(
                field=name,
                edges=None,
                weights=(),
                categories={str(c): float(w) for c, w in zip(cats, weights, strict=True)},
                background=_mean(weights, counts, name),
            )
        )
        offset += len(cats)
    return CompiledScorecard(
        intercept=float(np.asarray(clf.intercept_).ravel()[0]),
        terms=tuple(terms),
        fields=tuple(_caller_order(metadata, [*num_cols, *cat_cols])),
    )


def _bin_counts(metadata: Mapping[str, Any]) -> dict[str, list[int]]:
    try:
        return {
            f["field"]: [int(b["count"]) for b in f["bins"]]
            for f in metadata["scorecard"]["fields"]
        }
    except (KeyError, TypeError) as exc:
        raise UnsupportedModel("metadata lacks the scorecard's points table") from exc


def _mean(weights: np.ndarray, counts: Mapping[str, list[int]], field: str) -> float:
    shares = np.asarray(counts.get(field, ()), dtype=float)
    if shares.size != weights.size or shares.sum() <= 0:
        raise UnsupportedModel(f"the points table's bins of {field!r} do not match the model")
    return float(weights @ (shares / shares.sum()))
