"""The per-request fast path: a fitted pipeline compiled into plain lookups.

A one-row DataFrame through the sklearn pipeline costs milliseconds, the arithmetic
of a logistic regression microseconds (docs: FACTS.md). At load, the fitted
``Pipeline(ColumnTransformer(StandardScaler, OneHotEncoder), LogisticRegression)``
is folded, per caller field, into

* numeric: ``slope = w / scale`` and the centre ``mean``, so the field adds
  ``slope * (x - mean)`` to the log-odds;
* categorical: a dict ``category -> w_category`` (an unknown category adds 0, as
  ``OneHotEncoder(handle_unknown="ignore")`` encodes it as all zeros).

Explanations are interventional against background means ``m_j`` of the encoded
columns: ``contribution_f = sum_{j in f} w_j * (x_j - m_j)`` and
``base = intercept + sum_j w_j * m_j``, so ``base + sum(contributions) == logit``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


class UnsupportedModel(TypeError):
    """The estimator is not of the shape this compiler folds."""


class FeatureMissing(ValueError):
    """A model input is absent (or null) in the features given to score."""

    def __init__(self, field: str) -> None:
        super().__init__(f"feature {field!r} is required by the model and is missing")
        self.field = field


class FastModel(Protocol):
    """What a scorer and an explainer need of a compiled model (any kind).

    ``explain`` returns ``(base_value, contributions)`` in log-odds, one contribution
    per caller field, with ``base_value + sum(contributions) == logit(features)``;
    ``explanation_method`` names how (``linear-exact``, ``scorecard-points``,
    ``tree-shap``).
    """

    @property
    def fields(self) -> tuple[str, ...]: ...

    @property
    def explanation_method(self) -> str: ...

    def explain(self, features: Mapping[str, Any]) -> tuple[float, dict[str, float]]: ...

    def logit(self, features: Mapping[str, Any]) -> float: ...

    def probability(self, features: Mapping[str, Any]) -> float: ...

    def predict_proba_frame(self, frame: pd.DataFrame) -> np.ndarray: ...


def sigmoid(z: float) -> float:
    """Numerically stable logistic function."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


@dataclass(frozen=True)
class NumericTerm:
    """A numeric field: it adds ``slope * (x - centre)`` to the log-odds."""

    field: str
    slope: float  # coefficient / scaler scale
    centre: float  # scaler mean
    background: float  # background mean of the raw value


@dataclass(frozen=True)
class CategoricalTerm:
    """A categorical field: it adds ``weights.get(x, 0.0)`` to the log-odds."""

    field: str
    weights: Mapping[str, float]
    background: float  # sum_c w_c * share_c: the field's expected weight


@dataclass(frozen=True)
class CompiledLinearModel:
    """A fitted linear-logistic pipeline as per-field lookups (see module docstring)."""

    explanation_method: ClassVar[str] = "linear-exact"

    intercept: float
    numeric: tuple[NumericTerm, ...]
    categorical: tuple[CategoricalTerm, ...]
    #: The caller's field names, in the model's order.
    fields: tuple[str, ...]

    @property
    def base_value(self) -> float:
        """Log-odds at the background means (the explanation's base)."""
        return (
            self.intercept
            + sum(t.slope * (t.background - t.centre) for t in self.numeric)
            + sum(t.background for t in self.categorical)
        )

    def logit(self, features: Mapping[str, Any]) -> float:
        """Log-odds of default for one application."""
        z = self.intercept
        for n in self.numeric:
            z += n.slope * (_number(features, n.field) - n.centre)
        for c in self.categorical:
            z += c.weights.get(_category(features, c.field), 0.0)
        return z

    def probability(self, features: Mapping[str, Any]) -> float:
        """Probability of default for one application."""
        return sigmoid(self.logit(features))

    def explain(self, features: Mapping[str, Any]) -> tuple[float, dict[str, float]]:
        """``(base_value, contributions)`` in log-odds; they add up to :meth:`logit`."""
        contributions: dict[str, float] = {}
        for n in self.numeric:
            contributions[n.field] = n.slope * (_number(features, n.field) - n.background)
        for c in self.categorical:
            weight = c.weights.get(_category(features, c.field), 0.0)
            contributions[c.field] = weight - c.background
        return self.base_value, contributions

    def logit_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectorised log-odds of every row of ``frame`` (columns = :attr:`fields`)."""
        z = np.full(len(frame), self.intercept, dtype=float)
        for n in self.numeric:
            values = _column(frame, n.field).to_numpy(dtype=float, na_value=np.nan)
            if np.isnan(values).any():
                raise FeatureMissing(n.field)
            z += n.slope * (values - n.centre)
        for c in self.categorical:
            column = _column(frame, c.field)
            if column.isna().any():
                raise FeatureMissing(c.field)
            mapped = column.astype(str).map(c.weights)
            z += mapped.to_numpy(dtype=float, na_value=0.0)
        return z

    def predict_proba_frame(self, frame: pd.DataFrame) -> np.ndarray:
        """Vectorised probability of default of every row of ``frame``."""
        z = self.logit_frame(frame)
        # Same formula as sklearn's expit, stable for large |z|.
        return np.exp(-np.logaddexp(0.0, -z))


def _number(features: Mapping[str, Any], field: str) -> float:
    value = features.get(field)
    if value is None:
        raise FeatureMissing(field)
    return float(value)


def _category(features: Mapping[str, Any], field: str) -> str:
    value = features.get(field)
    if value is None:
        raise FeatureMissing(field)
    return value if isinstance(value, str) else str(value)


def _column(frame: pd.DataFrame, field: str) -> pd.Series:
    if field not in frame.columns:
        raise FeatureMissing(field)
    return frame[field]


def compile_logistic(estimator: Any, metadata: Mapping[str, Any]) -> CompiledLinearModel:
    """Fold a fitted logistic pipeline and its background means into lookups.

    Raises :class:`UnsupportedModel` if ``estimator`` is not
    ``Pipeline([("prep", ColumnTransformer([("num", StandardScaler, ...),
    ("cat", OneHotEncoder, ...)])), ("clf", LogisticRegression)])`` fit on two classes.
    """
    prep, clf = _unpack(estimator)
    scaler, num_cols = _transformer(prep, "num", StandardScaler)
    encoder, cat_cols = _transformer(prep, "cat", OneHotEncoder)
    coef = np.asarray(clf.coef_, dtype=float).ravel()
    n_encoded = len(num_cols) + sum(len(c) for c in encoder.categories_)
    if coef.size != n_encoded:
        raise UnsupportedModel(f"{coef.size} coefficients for {n_encoded} encoded columns")
    if encoder.drop is not None:
        raise UnsupportedModel("OneHotEncoder(drop=...) is not supported")
    if getattr(encoder, "min_frequency", None) or getattr(encoder, "max_categories", None):
        raise UnsupportedModel("infrequent-category grouping is not supported")

    means = _background(metadata)
    # with_mean / with_std switched off: the scaler does not centre / scale (mean_ may
    # still be set, so the flags decide, not the attributes).
    scale = scaler.scale_ if scaler.with_std else np.ones(len(num_cols))
    centre = scaler.mean_ if scaler.with_mean else np.zeros(len(num_cols))
    numeric = tuple(
        NumericTerm(
            field=name,
            slope=float(coef[i] / scale[i]),
            centre=float(centre[i]),
            background=float(means["numeric"][name]),
        )
        for i, name in enumerate(num_cols)
    )
    categorical = []
    offset = len(num_cols)
    for name, cats in zip(cat_cols, encoder.categories_, strict=True):
        weights = {
            str(c): float(w) for c, w in zip(cats, coef[offset : offset + len(cats)], strict=True)
        }
        shares = means["categorical"][name]
        background = sum(w * float(shares.get(c, 0.0)) for c, w in weights.items())
        categorical.append(CategoricalTerm(field=name, weights=weights, background=background))
        offset += len(cats)
    fields = tuple(_caller_order(metadata, [*num_cols, *cat_cols]))
    return CompiledLinearModel(
        intercept=float(np.asarray(clf.intercept_).ravel()[0]),
        numeric=numeric,
        categorical=tuple(categorical),
        fields=fields,
    )


def _unpack(estimator: Any) -> tuple[ColumnTransformer, LogisticRegression]:
    if not isinstance(estimator, Pipeline) or list(estimator.named_steps) != ["prep", "clf"]:
        raise UnsupportedModel("expected Pipeline([('prep', ...), ('clf', ...)])")
    prep, clf = estimator.named_steps["prep"], estimator.named_steps["clf"]
    if not isinstance(prep, ColumnTransformer) or not isinstance(clf, LogisticRegression):
        raise UnsupportedModel("expected a ColumnTransformer and a LogisticRegression")
    if len(clf.classes_) != 2:
        raise UnsupportedModel("expected a binary classifier")
    if prep.remainder != "drop":
        raise UnsupportedModel("ColumnTransformer(remainder=...) must be 'drop'")
    return prep, clf


def _transformer(prep: ColumnTransformer, name: str, cls: type) -> tuple[Any, list[str]]:
    fitted = {n: (t, cols) for n, t, cols in prep.transformers_ if n != "remainder"}
    if name not in fitted or not isinstance(fitted[name][0], cls):
        raise UnsupportedModel(f"expected a fitted {cls.__name__} named {name!r}")
    transformer, columns = fitted[name]
    return transformer, [str(c) for c in columns]


def _background(metadata: Mapping[str, Any]) -> Mapping[str, Any]:
    try:
        means = metadata["explainer"]["means"]
        return {"numeric": means["numeric"], "categorical": means["categorical"]}
    except (KeyError, TypeError) as exc:
        raise UnsupportedModel("metadata lacks explainer.means (background means)") from exc


def _caller_order(metadata: Mapping[str, Any], encoded_order: list[str]) -> list[str]:
    """The metadata's feature order if it names the same fields, else the encoder's."""
    declared = [f["name"] for f in metadata.get("features", [])]
    return declared if sorted(declared) == sorted(encoded_order) else encoded_order


# The other kinds' compilers build on the helpers above, so they are imported last.
from gateway.compiled_scorecard import compile_scorecard  # noqa: E402
from gateway.compiled_trees import compile_hgb  # noqa: E402

#: model kind -> compiler.
COMPILERS: dict[str, Callable[[Any, Mapping[str, Any]], FastModel]] = {
    "logistic": compile_logistic,
    "scorecard": compile_scorecard,
    "hgb": compile_hgb,
}
