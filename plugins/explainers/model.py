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

from typing import ClassVar

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
