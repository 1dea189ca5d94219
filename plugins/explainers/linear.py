"""The ``linear`` explainer: exact log-odds contributions of a linear model.

For the compiled logistic model of the decision's scorer it reports, per caller
field, ``w . (x - background mean)`` summed over the field's encoded columns, and a
base value such that ``base + sum(contributions) == score.logit`` (checked on every
decision: an explanation that does not add up is an error, never an answer). The
shared machinery is :class:`plugins.explainers.model.ModelExplainer`.
"""

from __future__ import annotations

from gateway.components import Explainer
from gateway.hookspecs import hookimpl
from plugins.explainers.model import TOLERANCE, ExplanationError, ModelExplainer

__all__ = ["TOLERANCE", "ExplanationError", "LinearExplainer", "register_explainers"]


class LinearExplainer(ModelExplainer):
    """Exact, additive log-odds contributions from the scorer's linear model."""

    name = "linear"
    method = "linear-exact"
    model_kinds = frozenset({"logistic"})


@hookimpl
def register_explainers() -> list[type[Explainer]]:
    """Contribute the ``linear`` explainer."""
    return [LinearExplainer]
