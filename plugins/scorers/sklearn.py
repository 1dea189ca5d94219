"""The ``sklearn`` scorer: a registered scikit-learn model version, via its fast path.

Settings::

    scorer:
      name: sklearn
      config: {model: german-credit, stage: champion}   # or {model: ..., version: 3}

The version is resolved and loaded (sha256-checked, compiled) once, when the
pipeline is built; per request the scorer only runs the compiled lookups.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from gateway.compiled import sigmoid
from gateway.components import Scorer, Services
from gateway.context import DecisionContext, Score
from gateway.hookspecs import hookimpl
from gateway.registry import LoadedModel


class SklearnScorer(Scorer):
    """Scores ``ctx.features`` with a registered model version (probability of default)."""

    name = "sklearn"
    config_schema = {
        "type": "object",
        "additionalProperties": False,
        "required": ["model"],
        "properties": {
            "model": {"type": "string", "minLength": 1, "description": "registered model name"},
            "version": {"type": "integer", "minimum": 1, "description": "a fixed version"},
            "stage": {
                "type": "string",
                "enum": ["candidate", "challenger", "champion", "archived"],
                "description": "the newest version at this stage (default: champion)",
            },
        },
        "not": {"required": ["version", "stage"]},
    }

    def __init__(self, config: Mapping[str, Any], services: Services) -> None:
        super().__init__(config, services)
        version = self.config.get("version")
        stage = None if version is not None else self.config.get("stage", "champion")
        registry = services.registry
        info = registry.get(self.config["model"], version=version, stage=stage)
        #: The loaded version (explainers reach it through ``registry.loaded(ref)``).
        self.model: LoadedModel = registry.load(info)
        self._ref = info.ref

    def score(self, ctx: DecisionContext) -> DecisionContext:
        """Set ``ctx.score`` (probability of default, log-odds, model version)."""
        logit = self.model.compiled.logit(ctx.features)
        return ctx.evolve(score=Score(probability=sigmoid(logit), logit=logit, model=self._ref))

    def score_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """Score a chunk as one frame (the compiled model's vectorised log-odds).

        Each row gets the same log-odds as :meth:`score` (the same operations in the same
        order, element-wise); a row missing a model feature makes the frame raise, and
        the batch engine then scores row by row, failing that row alone.
        """
        compiled = self.model.compiled
        fields = list(compiled.fields)
        frame = pd.DataFrame.from_records(
            [[ctx.features.get(f) for f in fields] for ctx in ctxs], columns=fields
        )
        logits = compiled.logit_frame(frame).tolist()  # type: ignore[attr-defined]
        return [
            ctx.evolve(score=Score(probability=sigmoid(z), logit=z, model=self._ref))
            for ctx, z in zip(ctxs, logits, strict=True)
        ]

    def ready(self) -> bool:
        """True: the model is loaded and verified when the scorer is built."""
        return self.model is not None

    def model_features(self) -> frozenset[str]:
        """The caller fields the model reads (checked against protected fields at start)."""
        return frozenset(self.model.compiled.fields)

    def model_kind(self) -> str:
        """The registered kind of its model version (explainers check it at start)."""
        return self._ref.kind

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self._ref.as_dict()}


@hookimpl
def register_scorers() -> list[type[Scorer]]:
    """Contribute the ``sklearn`` scorer."""
    return [SklearnScorer]
