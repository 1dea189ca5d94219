"""Exact explainers: the explanation the scorer's compiled model computes, checked.

Every model kind's fast path explains itself (``FastModel.explain``): one
contribution in log-odds per caller field and a base value. An explainer names the
method it stands for, so a pipeline's config says how its decisions are explained:

====================  =================  ======================================
explainer             model kind         method
====================  =================  ======================================
``linear``            ``logistic``       ``linear-exact`` (w . (x - background))
``scorecard-points``  ``scorecard``      ``scorecard-points`` (points vs average)
``tree-shap``         ``hgb``            ``tree-shap`` (path-dependent TreeSHAP)
====================  =================  ======================================

A pipeline whose explainer does not fit its scorer's model kind refuses to start
(:meth:`ModelExplainer.check_scorer`); per decision, the model's method is checked
again and ``base + sum(contributions)`` must equal the score's log-odds within
:data:`TOLERANCE`: an explanation that does not add up is an error, never an answer.
Fields the validator imputed are listed in the explanation's ``imputed``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import pandas as pd

from gateway.batch.columns import evolve
from gateway.compiled import CompiledLinearModel, FeatureMissing
from gateway.compiled_scorecard import CompiledScorecard
from gateway.components import Explainer, Scorer
from gateway.context import DecisionContext, Explanation
from gateway.errors import ConfigError
from gateway.hookspecs import hookimpl

#: Largest tolerated |base + sum(contributions) - logit| (architecture invariant 4).
TOLERANCE = 1e-6


class ExplanationError(RuntimeError):
    """The explainer cannot explain this decision faithfully."""


class ModelExplainer(Explainer):
    """Base of the exact explainers: asks the compiled model, checks the sum."""

    #: The explanation method (the compiled model's ``explanation_method``).
    method: ClassVar[str] = ""
    #: The model kinds whose compiled models give that method.
    model_kinds: ClassVar[frozenset[str]] = frozenset()

    def check_scorer(self, scorer: Scorer) -> None:
        """Refuse (``ConfigError``) a scorer whose model kind this explainer cannot explain."""
        kind = scorer.model_kind()
        if kind is not None and kind not in self.model_kinds:
            fits = ", ".join(sorted(self.model_kinds))
            raise ConfigError(
                f"explains {fits} models ({self.method}); the scorer's model is {kind!r}"
            )

    def explain(self, ctx: DecisionContext) -> DecisionContext:
        """Set ``ctx.explanation`` for the model that scored ``ctx``."""
        if ctx.score is None:
            raise ExplanationError(f"the {self.name} explainer runs after a scorer; no score")
        model = self.services.registry.loaded(ctx.score.model).compiled
        if model.explanation_method != self.method:
            raise ExplanationError(
                f"model kind {ctx.score.model.kind!r} is explained by "
                f"{model.explanation_method}, not {self.method}"
            )
        base, contributions = model.explain(ctx.features)
        gap = base + sum(contributions.values()) - ctx.score.logit
        if abs(gap) > TOLERANCE:
            raise ExplanationError(f"contributions miss the score's log-odds by {gap:.3g}")
        imputed = tuple(i.field for i in ctx.imputations if i.field in contributions)
        explanation = Explanation(
            base_value=base,
            contributions=contributions,
            output=ctx.score.logit,
            method=self.method,
            imputed=imputed,
        )
        return ctx.evolve(explanation=explanation)

    def explain_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """:meth:`explain` over a chunk in matrix form, for linear models and scorecards.

        The contributions of every row are one (rows x fields) matrix: a linear model's
        ``slope * (x - background)`` per numeric column and ``weight - background`` per
        category, a scorecard's bin weights less their backgrounds. Each element is the
        same float operation as :meth:`explain` performs. Other models (trees), a chunk
        scored by several model versions, or any row that does not add up go row by row.
        """
        if not ctxs:
            return []
        if any(ctx.score is None for ctx in ctxs):
            raise ExplanationError(f"the {self.name} explainer runs after a scorer; no score")
        refs = {ctx.score.model for ctx in ctxs if ctx.score is not None}
        if len(refs) != 1:
            return super().explain_many(ctxs)
        model = self.services.registry.loaded(next(iter(refs))).compiled
        if model.explanation_method != self.method:
            return super().explain_many(ctxs)  # raises on the first row, as explain would
        features = [ctx.features for ctx in ctxs]
        found = contribution_matrix(model, features)
        if found is None:
            return super().explain_many(ctxs)
        names, matrix, base = found
        logits = np.array([ctx.score.logit for ctx in ctxs if ctx.score is not None])
        if (np.abs(base + matrix.sum(axis=1) - logits) > TOLERANCE).any():
            raise ExplanationError("contributions miss the score's log-odds")  # per row then
        out = []
        name_set = frozenset(names)
        for ctx, row in zip(ctxs, matrix.tolist(), strict=True):
            assert ctx.score is not None
            explanation = Explanation(
                base_value=base,
                contributions=dict(zip(names, row, strict=True)),
                output=ctx.score.logit,
                method=self.method,
                imputed=tuple(i.field for i in ctx.imputations if i.field in name_set),
            )
            out.append(evolve(ctx, explanation=explanation))
        return out


def contribution_matrix(
    model: Any, features: Sequence[Mapping[str, Any]]
) -> tuple[list[str], np.ndarray, float] | None:
    """``(field names, rows x fields contributions, base value)`` of a linear model or a
    scorecard, element for element what ``model.explain`` gives; ``None`` for other models.

    Raises :class:`~gateway.compiled.FeatureMissing` for a missing field (the batch engine
    then explains row by row, failing those rows alone).
    """
    if isinstance(model, CompiledLinearModel):
        names: list[str] = []
        columns: list[np.ndarray] = []
        for n in model.numeric:
            cells = [f.get(n.field) for f in features]
            if any(v is None for v in cells):
                raise FeatureMissing(n.field)
            values = np.array(cells, dtype=np.float64)  # float(v) of each, or ValueError
            if values.shape != (len(cells),):
                raise FeatureMissing(n.field)  # not one number per row: explain row by row
            names.append(n.field)
            columns.append(n.slope * (values - n.background))
        for c in model.categorical:
            weights, background = c.weights, c.background
            cats = [f.get(c.field) for f in features]
            if any(v is None for v in cats):
                raise FeatureMissing(c.field)
            names.append(c.field)
            columns.append(
                np.array(
                    [
                        weights.get(v if isinstance(v, str) else str(v), 0.0) - background
                        for v in cats
                    ],
                    dtype=np.float64,
                )
            )
        matrix = np.column_stack(columns) if columns else np.zeros((len(features), 0))
        return names, matrix, model.base_value
    if isinstance(model, CompiledScorecard):
        frame = pd.DataFrame.from_records(
            [[f.get(t.field) for t in model.terms] for f in features],
            columns=[t.field for t in model.terms],
        )
        names = [t.field for t in model.terms]
        columns = [t.weights_frame(frame) - t.background for t in model.terms]
        matrix = np.column_stack(columns) if columns else np.zeros((len(features), 0))
        return names, matrix, model.base_value
    return None


class ScorecardExplainer(ModelExplainer):
    """A scorecard's points, as log-odds against the average training applicant."""

    name = "scorecard-points"
    method = "scorecard-points"
    model_kinds = frozenset({"scorecard"})


class TreeShapExplainer(ModelExplainer):
    """Exact path-dependent TreeSHAP of boosted trees, in log-odds (raw margin)."""

    name = "tree-shap"
    method = "tree-shap"
    model_kinds = frozenset({"hgb"})


@hookimpl
def register_explainers() -> list[type[Explainer]]:
    """Contribute the ``scorecard-points`` and ``tree-shap`` explainers."""
    return [ScorecardExplainer, TreeShapExplainer]
