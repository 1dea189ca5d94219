"""The ``sklearn`` scorer: a registered scikit-learn model version, via its fast path.

Settings::

    scorer:
      name: sklearn
      config: {model: german-credit, stage: champion}   # or {model: ..., version: 3}

The version is resolved and loaded (sha256-checked, compiled) when the pipeline is
built; per request the scorer only runs the compiled lookups. Bound to a stage, the
scorer follows it: a version promoted later is loaded in the background and used from
the next request on (:mod:`gateway.model_switch`); bound to a version, it never moves.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from gateway.batch.columns import evolve
from gateway.compiled import CompiledLinearModel, FeatureMissing, sigmoid
from gateway.components import Scorer, Services
from gateway.context import DecisionContext, ModelRef, Score
from gateway.hookspecs import hookimpl
from gateway.model_switch import Follower
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
        self._bound: tuple[LoadedModel, ModelRef] = (registry.load(info), info.ref)
        if stage is not None:  # follow promotions at the stage, without a restart
            registry.followers.follow(
                Follower(info.name, stage, info.version, self._switch, self._switch_problems)
            )

    @property
    def model(self) -> LoadedModel:
        """The loaded version in use (explainers reach it through ``registry.loaded(ref)``)."""
        return self._bound[0]

    def _switch(self, loaded: LoadedModel) -> None:
        # One assignment: a request reads ``_bound`` once, so it never mixes two versions.
        self._bound = (loaded, loaded.ref)

    def _switch_problems(self, loaded: LoadedModel) -> list[str]:
        """Why this pipeline could not score with ``loaded`` (its explainers were checked
        against the current kind at start, so another kind is refused)."""
        kind = self._bound[1].kind
        if loaded.info.kind != kind:
            return [f"model kind {loaded.info.kind!r}; this pipeline explains {kind!r} models"]
        return []

    def score(self, ctx: DecisionContext) -> DecisionContext:
        """Set ``ctx.score`` (probability of default, log-odds, model version)."""
        model, ref = self._bound
        logit = model.compiled.logit(ctx.features)
        return ctx.evolve(score=Score(probability=sigmoid(logit), logit=logit, model=ref))

    def score_many(self, ctxs: Sequence[DecisionContext]) -> list[DecisionContext]:
        """Score a chunk as one frame (the compiled model's vectorised log-odds).

        Each row gets the same log-odds as :meth:`score` (the same operations in the same
        order, element-wise); a row missing a model feature makes the frame raise, and
        the batch engine then scores row by row, failing that row alone.
        """
        model, ref = self._bound
        compiled = model.compiled
        if isinstance(compiled, CompiledLinearModel):
            logits = linear_logits(compiled, [ctx.features for ctx in ctxs])
        else:
            fields = list(compiled.fields)
            frame = pd.DataFrame.from_records(
                [[ctx.features.get(f) for f in fields] for ctx in ctxs], columns=fields
            )
            logits = compiled.logit_frame(frame).tolist()  # type: ignore[attr-defined]
        return [
            evolve(ctx, score=Score(probability=sigmoid(z), logit=z, model=ref))
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
        return self._bound[1].kind

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "model": self._bound[1].as_dict()}


def linear_logits(model: CompiledLinearModel, features: Sequence[Mapping[str, Any]]) -> list[float]:
    """A linear model's log-odds of every row, from numpy columns (no DataFrame: building
    one costs more than the arithmetic). The operations of ``model.logit``, in its order,
    element-wise; a missing field raises :class:`~gateway.compiled.FeatureMissing`."""
    z = np.full(len(features), model.intercept, dtype=np.float64)
    for n in model.numeric:
        cells = [f.get(n.field) for f in features]
        if any(v is None for v in cells):
            raise FeatureMissing(n.field)
        values = np.array(cells, dtype=np.float64)
        if values.shape != z.shape:
            raise FeatureMissing(n.field)  # not one number per row: score row by row
        z += n.slope * (values - n.centre)
    for c in model.categorical:
        weights = c.weights
        cells = [f.get(c.field) for f in features]
        if any(v is None for v in cells):
            raise FeatureMissing(c.field)
        z += np.array(
            [weights.get(v if isinstance(v, str) else str(v), 0.0) for v in cells],
            dtype=np.float64,
        )
    return [float(v) for v in z.tolist()]


@hookimpl
def register_scorers() -> list[type[Scorer]]:
    """Contribute the ``sklearn`` scorer."""
    return [SklearnScorer]
