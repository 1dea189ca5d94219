"""The fast path of the ``hgb`` kind: boosted trees as flat numpy arrays.

The fitted ``Pipeline(ColumnTransformer(passthrough numbers, OrdinalEncoder
categories), HistGradientBoostingClassifier(categorical_features=...))`` is folded
at load into

* the classifier's *internal* columns (it puts categorical columns first and
  re-codes their values by its own ordinal encoder): per column, the caller's field
  and, for a category, ``label -> internal code`` (an unknown label is a missing
  value, as ``OrdinalEncoder(unknown_value=nan)`` makes it);
* every split node of every tree, flattened: column, threshold, missing-value
  direction, and per categorical split the left and known category sets (the
  classifier's bitsets, unpacked);
* :class:`gateway.treeshap.PathTables` for the leaves.

One application is one vector; all split decisions are taken in a few vectorised
comparisons (the same rules as scikit-learn's ``_predict_one_from_raw_data``), the
raw margin is ``baseline + sum(reached leaf values)`` and TreeSHAP reads its
precomputed tables. The columns are one per caller field, so attributions need no
summing back beyond renaming.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OrdinalEncoder

from gateway.compiled import (
    FeatureMissing,
    UnsupportedModel,
    _caller_order,
    _category,
    _column,
    _number,
    sigmoid,
)
from gateway.treeshap import PathTables, Tree, build_path_tables

#: Rows scored per block in :meth:`CompiledForest.predict_proba_frame` (bounds memory).
BLOCK_ROWS = 4096


@dataclass(frozen=True)
class InputColumn:
    """One internal column of the classifier: a caller field, maybe category-coded."""

    field: str
    codes: Mapping[str, float] | None  # None: numeric


@dataclass(frozen=True)
class Splits:
    """Every split node of the forest, in global order."""

    column: np.ndarray  # (N,) internal column
    threshold: np.ndarray  # (N,) numeric: go left if x <= threshold
    missing_left: np.ndarray  # (N,) bool
    categorical: np.ndarray  # (C,) the categorical split nodes
    cat_left: np.ndarray  # (C * K,) bool, split by split: internal code goes left
    cat_known: np.ndarray  # (C * K,) bool: internal code is known to the split's column
    width: int  # K: codes per categorical split

    def go_left(self, X: np.ndarray) -> np.ndarray:
        """Direction at every split for each row of ``X`` (shape (..., columns))."""
        v = X[..., self.column]
        left = v <= self.threshold  # numeric splits (categorical ones are overwritten)
        if self.categorical.size:
            vc = v[..., self.categorical]
            code = np.nan_to_num(vc, nan=-1.0).astype(np.intp)
            valid = (code >= 0) & (code < self.width)
            flat = np.arange(self.categorical.size) * self.width + np.where(valid, code, 0)
            known = self.cat_known[flat] & valid
            # in the left set -> left; known otherwise -> right; unknown -> as missing
            left[..., self.categorical] = np.where(
                known, self.cat_left[flat], self.missing_left[self.categorical]
            )
        return np.where(np.isnan(v), self.missing_left, left)


@dataclass(frozen=True)
class CompiledForest:
    """A fitted HGB pipeline as flat arrays (see module docstring)."""

    explanation_method: ClassVar[str] = "tree-shap"

    baseline: float
    columns: tuple[InputColumn, ...]
    splits: Splits
    paths: PathTables
    #: The caller's field names, in the model's order.
    fields: tuple[str, ...]

    @property
    def base_value(self) -> float:
        """Expected raw margin: the baseline plus each tree's expectation over its covers."""
        return self.baseline + self.paths.expected

    def vector(self, features: Mapping[str, Any]) -> np.ndarray:
        """The application as the classifier's internal column vector."""
        x = np.empty(len(self.columns))
        for i, col in enumerate(self.columns):
            if col.codes is None:
                x[i] = _number(features, col.field)
            else:
                x[i] = col.codes.get(_category(features, col.field), np.nan)
        return x

    def logit(self, features: Mapping[str, Any]) -> float:
        """Raw margin (log-odds of default) for one application."""
        return self.baseline + float(self.paths.raw(self.splits.go_left(self.vector(features))))

    def probability(self, features: Mapping[str, Any]) -> float:
        """Probability of default for one application."""
        return sigmoid(self.logit(features))

    def explain(self, features: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        """``(base_value, TreeSHAP attributions per field)`` in log-odds."""
        _raw, phi = self.paths.shap(self.splits.go_left(self.vector(features)))
        by_column = {col.field: float(phi[i]) for i, col in enumerate(self.columns)}
        return self.base_value, {f: by_column[f] for f in self.fields}

    def matrix(self, frame: pd.DataFrame) -> np.ndarray:
        """The rows of ``frame`` as internal column vectors."""
        X = np.empty((len(frame), len(self.columns)))
        for i, col in enumerate(self.columns):
            column = _column(frame, col.field)
            if column.isna().any():
                raise FeatureMissing(col.field)
            if col.codes is None:
                X[:, i] = column.to_numpy(dtype=float)
            else:
                X[:, i] = column.astype(str).map(col.codes).to_numpy(dtype=float, na_value=np.nan)
        return X

    def logit_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectorised raw margin of every row of ``frame``."""
        X = self.matrix(frame)
        out = np.empty(len(X))
        for start in range(0, len(X), BLOCK_ROWS):
            block = X[start : start + BLOCK_ROWS]
            out[start : start + len(block)] = self.paths.raw(self.splits.go_left(block))
        return out + self.baseline

    def predict_proba_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectorised probability of default of every row of ``frame``."""
        return np.exp(-np.logaddexp(0.0, -self.logit_frame(frame)))


def compile_hgb(estimator: Any, metadata: Mapping[str, Any]) -> CompiledForest:
    """Fold a fitted HGB pipeline into :class:`CompiledForest`.

    Raises :class:`UnsupportedModel` unless ``estimator`` is ``Pipeline([("prep",
    ColumnTransformer([("num", "passthrough", ...), ("cat", OrdinalEncoder, ...)])),
    ("clf", HistGradientBoostingClassifier)])`` fitted on two classes.
    """
    if not isinstance(estimator, Pipeline) or list(estimator.named_steps) != ["prep", "clf"]:
        raise UnsupportedModel("expected Pipeline([('prep', ...), ('clf', ...)])")
    prep, clf = estimator.named_steps["prep"], estimator.named_steps["clf"]
    if not isinstance(prep, ColumnTransformer) or not isinstance(
        clf, HistGradientBoostingClassifier
    ):
        raise UnsupportedModel("expected a ColumnTransformer and a HistGradientBoostingClassifier")
    if len(clf.classes_) != 2 or prep.remainder != "drop":
        raise UnsupportedModel("expected a binary classifier and remainder='drop'")
    outer = _outer_columns(prep)
    internal = _internal_columns(clf, outer)
    trees = [_tree(p[0].nodes) for p in clf._predictors]
    splits = _splits(clf, [p[0] for p in clf._predictors], len(internal))
    paths = build_path_tables(trees, len(internal))
    fields = tuple(_caller_order(metadata, [c.field for c in outer]))
    return CompiledForest(
        baseline=float(np.asarray(clf._baseline_prediction).ravel()[0]),
        columns=tuple(internal),
        splits=splits,
        paths=paths,
        fields=fields,
    )


def _outer_columns(prep: ColumnTransformer) -> list[InputColumn]:
    """The pipeline's encoded columns, in order: caller field and label -> ordinal code."""
    out: list[InputColumn] = []
    for name, transformer, columns in prep.transformers_:
        if name == "remainder":
            continue
        if name == "num" and isinstance(transformer, FunctionTransformer | str):
            out.extend(InputColumn(str(c), None) for c in columns)
        elif name == "cat" and isinstance(transformer, OrdinalEncoder):
            for column, cats in zip(columns, transformer.categories_, strict=True):
                out.append(InputColumn(str(column), {str(c): float(i) for i, c in enumerate(cats)}))
        else:
            raise UnsupportedModel(f"unexpected transformer {name!r}")
    return out


def _internal_columns(
    clf: HistGradientBoostingClassifier, outer: list[InputColumn]
) -> list[InputColumn]:
    """The classifier's own column order and category codes (it re-encodes categories)."""
    pre = getattr(clf, "_preprocessor", None)
    if pre is None:
        if any(c.codes is not None for c in outer):
            raise UnsupportedModel("categorical columns must be declared categorical_features")
        return outer
    indices = pre.output_indices_
    order: list[InputColumn | None] = [None] * len(outer)
    encoder = pre.named_transformers_["encoder"]
    cat_outer = np.flatnonzero(pre.transformers_[0][2])
    num_outer = np.flatnonzero(pre.transformers_[1][2])
    for k, (outer_index, seen) in enumerate(zip(cat_outer, encoder.categories_, strict=True)):
        col = outer[outer_index]
        if col.codes is None:
            raise UnsupportedModel(f"numeric column {col.field!r} declared categorical")
        # outer ordinal code -> the classifier's code (its index among the seen codes)
        inner = {float(v): float(i) for i, v in enumerate(seen) if not np.isnan(v)}
        codes = {label: inner.get(code, np.nan) for label, code in col.codes.items()}
        order[int(indices["encoder"].start) + k] = InputColumn(col.field, codes)
    for k, outer_index in enumerate(num_outer):
        order[int(indices["numerical"].start) + k] = outer[outer_index]
    if any(c is None for c in order):
        raise UnsupportedModel("could not map the classifier's columns")
    return [c for c in order if c is not None]


def _tree(nodes: np.ndarray) -> Tree:
    return Tree(
        left=nodes["left"].astype(np.intp),
        right=nodes["right"].astype(np.intp),
        column=nodes["feature_idx"].astype(np.intp),
        cover=nodes["count"].astype(float),
        value=nodes["value"].astype(float),
        is_leaf=nodes["is_leaf"].astype(bool),
    )


def _splits(clf: HistGradientBoostingClassifier, predictors: list[Any], n_columns: int) -> Splits:
    known_bitsets, f_idx_map = clf._bin_mapper.make_known_categories_bitsets()
    # Codes per categorical split: up to the largest known code (at most 255).
    known_all = [_unpack(b, 256) for b in known_bitsets]
    width = max((int(np.flatnonzero(k).max()) + 1 for k in known_all if k.any()), default=1)
    columns: list[int] = []
    thresholds: list[float] = []
    missing: list[bool] = []
    categorical: list[int] = []
    cat_left: list[np.ndarray] = []
    cat_known: list[np.ndarray] = []
    for predictor in predictors:
        nodes = predictor.nodes
        for j in np.flatnonzero(~nodes["is_leaf"].astype(bool)):
            node = nodes[j]
            column = int(node["feature_idx"])
            if bool(node["is_categorical"]):
                categorical.append(len(columns))
                bitset = predictor.raw_left_cat_bitsets[node["bitset_idx"]]
                cat_left.append(_unpack(bitset, 256)[:width])
                cat_known.append(known_all[f_idx_map[column]][:width])
            columns.append(column)
            thresholds.append(float(node["num_threshold"]))
            missing.append(bool(node["missing_go_to_left"]))
    if columns and max(columns) >= n_columns:
        raise UnsupportedModel("a split refers to a column the model does not have")
    return Splits(
        column=np.array(columns, dtype=np.intp),
        threshold=np.array(thresholds, dtype=float),
        missing_left=np.array(missing, dtype=bool),
        categorical=np.array(categorical, dtype=np.intp),
        cat_left=np.concatenate(cat_left) if cat_left else np.zeros(0, dtype=bool),
        cat_known=np.concatenate(cat_known) if cat_known else np.zeros(0, dtype=bool),
        width=width,
    )


def _unpack(bitset: np.ndarray, width: int) -> np.ndarray:
    """A scikit-learn bitset (8 x uint32, little-endian bits) as a bool array."""
    words = np.asarray(bitset, dtype=np.uint32)
    bits = (words[:, None] >> np.arange(32, dtype=np.uint32)[None, :]) & 1
    return bits.ravel()[:width].astype(bool)
