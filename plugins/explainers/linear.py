"""The ``linear`` explainer: exact log-odds contributions of a linear model.

For the compiled logistic model of the decision's scorer it reports, per caller
field, ``w . (x - background mean)`` summed over the field's encoded columns, and a
base value such that ``base + sum(contributions) == score.logit`` (checked on every
decision: an explanation that does not add up is an error, never an answer).
"""

from __future__ import annotations

from gateway.compiled import CompiledLinearModel
from gateway.components import Explainer
from gateway.context import DecisionContext, Explanation
from gateway.hookspecs import hookimpl

#: Largest tolerated |base + sum(contributions) - logit| (architecture invariant 4).
TOLERANCE = 1e-6


class ExplanationError(RuntimeError):
    """The explainer cannot explain this decision faithfully."""


class LinearExplainer(Explainer):
    """Exact, additive log-odds contributions from the scorer's linear model."""

    name = "linear"

    def explain(self, ctx: DecisionContext) -> DecisionContext:
        """Set ``ctx.explanation`` for the model that scored ``ctx``."""
        if ctx.score is None:
            raise ExplanationError("the linear explainer runs after a scorer; no score was set")
        model = self.services.registry.loaded(ctx.score.model).compiled
        if not isinstance(model, CompiledLinearModel):
            raise ExplanationError(f"model kind {ctx.score.model.kind!r} is not linear")
        base, contributions = model.explain(ctx.features)
        gap = base + sum(contributions.values()) - ctx.score.logit
        if abs(gap) > TOLERANCE:
            raise ExplanationError(f"contributions miss the score's log-odds by {gap:.3g}")
        explanation = Explanation(
            base_value=base,
            contributions=contributions,
            output=ctx.score.logit,
            method="linear-exact",
        )
        return ctx.evolve(explanation=explanation)


@hookimpl
def register_explainers() -> list[type[Explainer]]:
    """Contribute the ``linear`` explainer."""
    return [LinearExplainer]
